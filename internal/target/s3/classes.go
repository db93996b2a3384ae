package s3

import "strings"

// Storage classes with behaviour of their own. Other class names pass
// through unchanged, so S3-compatible stores with their own classes work.
const (
	ClassStandard           = "STANDARD"
	ClassGlacierIR          = "GLACIER_IR"
	ClassGlacier            = "GLACIER"
	ClassDeepArchive        = "DEEP_ARCHIVE"
	ClassIntelligentTiering = "INTELLIGENT_TIERING"
)

// MaxCopyObjectSize is the largest object one CopyObject may copy on AWS
// (5 GiB); larger objects need a multipart copy.
const MaxCopyObjectSize int64 = 5 << 30

// S3 multipart limits.
const (
	MinPartSize = 5 << 20 // every part but the last
	MaxPartSize = 5 << 30
	MaxParts    = 10000
)

// NormalizeClass upper-cases a class name and maps "" (how S3 reports
// STANDARD in HeadObject) to STANDARD.
func NormalizeClass(c string) string {
	c = strings.ToUpper(strings.TrimSpace(c))
	if c == "" {
		return ClassStandard
	}
	return c
}

// NeedsRestore reports whether objects of the class must be restored before
// they can be read or copied. GLACIER_IR is readable at any time.
func NeedsRestore(class string) bool {
	switch NormalizeClass(class) {
	case ClassGlacier, ClassDeepArchive:
		return true
	}
	return false
}
