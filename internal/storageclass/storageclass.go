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
