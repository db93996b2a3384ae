package s3

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
)

// ObjectError is a failed action on one object. It names the model, the
// versions the object belongs to and the object.
type ObjectError struct {
	Model    string
	Versions []int
	Bucket   string
	Key      string
	// Op is what was attempted, e.g. "transition STANDARD→GLACIER_IR".
	Op  string
	Err error
}

func (e *ObjectError) Error() string {
	return fmt.Sprintf("s3: model %s %s: s3://%s/%s: %s: %v", e.Model, versionsLabel(e.Versions), e.Bucket, e.Key, e.Op, e.Err)
}

func (e *ObjectError) Unwrap() error { return e.Err }

// ChangedError means the object is not what the plan saw: it was replaced
// or removed. Repeating the action cannot help; a new plan will.
type ChangedError struct {
	PlannedETag string
	ActualETag  string // "" when the object is gone
}

func (e *ChangedError) Error() string {
	if e.ActualETag == "" {
		return "object no longer exists; it changed since the plan was made"
	}
	return fmt.Sprintf("object changed since the plan was made (ETag %s, planned %s)", e.ActualETag, e.PlannedETag)
}

// NotRestoredError means an archived object cannot be copied because its
// restore has not finished (or was never requested). Retry once it is
// readable.
type NotRestoredError struct {
	Class string
	Code  string // the server's error code, if it answered with one
}

func (e *NotRestoredError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%s object is not restored (%s)", e.Class, e.Code)
	}
	return fmt.Sprintf("%s object is not restored", e.Class)
}

// UnsupportedError is an object modelsync cannot change, e.g. one encrypted
// with a customer-provided key it does not hold.
type UnsupportedError struct{ Reason string }

func (e *UnsupportedError) Error() string { return e.Reason }

// VerifyError means the copy completed but the object does not look as it
// should afterwards.
type VerifyError struct {
	Field, Want, Got string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("verification after copy: %s is %q, want %q", e.Field, e.Got, e.Want)
}

// IsRetryable reports whether repeating the action later may succeed:
// throttling, server errors and dropped connections (after the SDK's own
// retries), and archived objects whose restore is still running.
func IsRetryable(err error) bool {
	var nr *NotRestoredError
	if errors.As(err, &nr) {
		return true
	}
	var ch *ChangedError
	var un *UnsupportedError
	var ve *VerifyError
	if errors.As(err, &ch) || errors.As(err, &un) || errors.As(err, &ve) {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	return retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// notRestored turns the server's answer to copying an archived object into
// a NotRestoredError; S3 uses either code.
func notRestored(err error, class string) error {
	switch c := apiCode(err); c {
	case "InvalidObjectState", "ObjectNotInActiveTierError":
		return &NotRestoredError{Class: class, Code: c}
	}
	return err
}
