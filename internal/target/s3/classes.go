package s3

// MaxCopyObjectSize is the largest object one CopyObject may copy on AWS
// (5 GiB); larger objects need a multipart copy.
const MaxCopyObjectSize int64 = 5 << 30

// S3 multipart limits.
const (
	MinPartSize = 5 << 20 // every part but the last
	MaxPartSize = 5 << 30
	MaxParts    = 10000
)
