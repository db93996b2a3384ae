// Package storageclass names S3 storage classes and what they imply. The
// s3 target moves artifacts between classes and storagecost prices them;
// both read the names from here.
package storageclass

import "strings"

// Storage classes with behaviour of their own. Other class names pass
// through unchanged, so S3-compatible stores with their own classes work.
const (
	Standard           = "STANDARD"
	GlacierIR          = "GLACIER_IR"
	Glacier            = "GLACIER"
	DeepArchive        = "DEEP_ARCHIVE"
	IntelligentTiering = "INTELLIGENT_TIERING"
)

// Normalize upper-cases a class name and maps "" (how S3 reports
// STANDARD in HeadObject) to STANDARD.
func Normalize(c string) string {
	c = strings.ToUpper(strings.TrimSpace(c))
	if c == "" {
		return Standard
	}
	return c
}

// NeedsRestore reports whether objects of the class must be restored before
// they can be read or copied. GLACIER_IR is readable at any time.
func NeedsRestore(class string) bool {
	switch Normalize(class) {
	case Glacier, DeepArchive:
		return true
	}
	return false
}

// Known returns the storage class names the S3 API defines (the values of
// its x-amz-storage-class header), in a fresh slice. A name outside them
// is a typo on AWS; S3-compatible stores with classes of their own name
// them in modelsync.yaml's extraStorageClasses.
func Known() []string {
	return []string{
		Standard, "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", IntelligentTiering,
		GlacierIR, Glacier, DeepArchive, "OUTPOSTS", "SNOW", "EXPRESS_ONEZONE", "FSX_OPENZFS", "FSX_ONTAP",
	}
}

// IsKnown reports whether c (in any case) is one of Known.
func IsKnown(c string) bool {
	c = Normalize(c)
	for _, k := range Known() {
		if k == c {
			return true
		}
	}
	return false
}

// Suggest returns the known class c most likely means, "" when none: the
// one that matches it ignoring case and punctuation (GLACIERIR,
// glacier-ir and Glacier IR all mean GLACIER_IR).
func Suggest(c string) string {
	squash := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, strings.ToUpper(s))
	}
	want := squash(c)
	for _, k := range Known() {
		if squash(k) == want {
			return k
		}
	}
	return ""
}
