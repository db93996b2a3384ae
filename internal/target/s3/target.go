package s3

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/modelsync/modelsync/reconciler"
)

// Name is the target's name in plans.
const Name = "s3"

// Action kinds this target plans.
const (
	KindTransition = "transition-storage-class"
	KindRestore    = "restore-object"
	KindDelete     = "delete-objects"
)

// What to do with the previous version of an object in a versioned bucket
// after a class change (the copy leaves it noncurrent and fully billed).
const (
	NoncurrentDelete = "delete"
	NoncurrentReport = "report"
)

// How a multipart copy treats the source's checksum.
const (
	// ChecksumPreserve creates the upload with the source's checksum
	// algorithm and, for a full-object CRC, has the server check the
	// assembled object against the source's value.
	ChecksumPreserve = "preserve"
	// ChecksumNone creates the upload without a checksum, for S3-compatible
	// stores whose UploadPartCopy cannot compute part checksums (MinIO
	// refuses such parts with "checksum missing"). The copy is then checked
	// by size and class only.
	ChecksumNone = "none"
)

// Defaults for Config.
const (
	DefaultMinPartSize int64 = 64 << 20
	DefaultConcurrency       = 4
	DefaultRestoreTier       = TierStandard
	DefaultRestoreDays       = 7
	// DefaultObserveConcurrency models are observed at once: enough to
	// hide request latency, few enough not to crowd a shared S3 endpoint.
	DefaultObserveConcurrency = 8
)

// Config configures the target. Client, Locator and Versions are required.
type Config struct {
	Client   *s3.Client
	Locator  reconciler.ArtifactLocator
	Versions reconciler.VersionLister
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// CopyThreshold is the largest object copied with one CopyObject; larger
	// ones use a multipart copy. 0 means MaxCopyObjectSize (5 GiB); it
	// cannot be larger.
	CopyThreshold int64
	// MinPartSize is the smallest part of a multipart copy; the part size is
	// max(ceil(size/10000), MinPartSize). 0 means DefaultMinPartSize; at
	// least MinPartSize (5 MiB).
	MinPartSize int64
	// Concurrency is how many UploadPartCopy requests run at once.
	Concurrency int
	// ObserveConcurrency is how many models Observe reads at once (their
	// LISTs, restore reads and artifact lookups). 0 means
	// DefaultObserveConcurrency.
	ObserveConcurrency int
	// RestoreTier is Expedited, Standard or Bulk. DEEP_ARCHIVE objects use
	// Standard when Expedited is configured, since they do not offer it.
	RestoreTier string
	// RestoreDays is how long a restored copy stays readable.
	RestoreDays int32
	// NoncurrentPolicy is NoncurrentDelete or NoncurrentReport (default).
	NoncurrentPolicy string
	// MultipartChecksum is ChecksumPreserve (default) or ChecksumNone.
	MultipartChecksum string
	// Progress receives copy progress; see NewProgressBar and NewProgressLog.
	Progress func(ProgressEvent)
	// Logger receives what Apply did beyond its error, e.g. retained
	// noncurrent versions. Discarded when nil.
	Logger *slog.Logger
}

// Target keeps artifact storage classes in line with model lifecycles. Its
// methods are safe for concurrent use.
type Target struct {
	cfg Config
	// listPageSize is the MaxKeys of Observe's LISTs; 0 leaves the
	// server's default (1000). Tests shrink it to cross page boundaries.
	listPageSize int32

	// restores remembers the restores this process requested, keyed by
	// bucket/key, for stores that refuse tagging archived objects (moto
	// does); the object tag stays the record that survives a restart.
	mu       sync.Mutex
	restores map[string]RestoreRequest
}

// New checks cfg and fills in defaults.
func New(cfg Config) (*Target, error) {
	var errs []error
	if cfg.Client == nil {
		errs = append(errs, errors.New("s3: Config.Client is required"))
	}
	if cfg.Locator == nil {
		errs = append(errs, errors.New("s3: Config.Locator is required"))
	}
	if cfg.Versions == nil {
		errs = append(errs, errors.New("s3: Config.Versions is required"))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case cfg.CopyThreshold == 0:
		cfg.CopyThreshold = MaxCopyObjectSize
	case cfg.CopyThreshold < 0 || cfg.CopyThreshold > MaxCopyObjectSize:
		errs = append(errs, fmt.Errorf("s3: CopyThreshold %d: must be between 1 and %d bytes (the CopyObject limit)", cfg.CopyThreshold, MaxCopyObjectSize))
	}
	switch {
	case cfg.MinPartSize == 0:
		cfg.MinPartSize = DefaultMinPartSize
	case cfg.MinPartSize < MinPartSize || cfg.MinPartSize > MaxPartSize:
		errs = append(errs, fmt.Errorf("s3: MinPartSize %d: must be between %d and %d bytes", cfg.MinPartSize, MinPartSize, MaxPartSize))
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	} else if cfg.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("s3: Concurrency %d: must be positive", cfg.Concurrency))
	}
	if cfg.ObserveConcurrency == 0 {
		cfg.ObserveConcurrency = DefaultObserveConcurrency
	} else if cfg.ObserveConcurrency < 0 {
		errs = append(errs, fmt.Errorf("s3: ObserveConcurrency %d: must be positive", cfg.ObserveConcurrency))
	}
	switch cfg.RestoreTier {
	case "":
		cfg.RestoreTier = DefaultRestoreTier
	case TierExpedited, TierStandard, TierBulk:
	default:
		errs = append(errs, fmt.Errorf("s3: RestoreTier %q: want %s, %s or %s", cfg.RestoreTier, TierExpedited, TierStandard, TierBulk))
	}
	if cfg.RestoreDays == 0 {
		cfg.RestoreDays = DefaultRestoreDays
	} else if cfg.RestoreDays < 0 {
		errs = append(errs, fmt.Errorf("s3: RestoreDays %d: must be positive", cfg.RestoreDays))
	}
	switch cfg.NoncurrentPolicy {
	case "":
		cfg.NoncurrentPolicy = NoncurrentReport
	case NoncurrentDelete, NoncurrentReport:
	default:
		errs = append(errs, fmt.Errorf("s3: NoncurrentPolicy %q: want %q or %q", cfg.NoncurrentPolicy, NoncurrentDelete, NoncurrentReport))
	}
	switch cfg.MultipartChecksum {
	case "":
		cfg.MultipartChecksum = ChecksumPreserve
	case ChecksumPreserve, ChecksumNone:
	default:
		errs = append(errs, fmt.Errorf("s3: MultipartChecksum %q: want %q or %q", cfg.MultipartChecksum, ChecksumPreserve, ChecksumNone))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Target{cfg: cfg, restores: map[string]RestoreRequest{}}, nil
}

func (t *Target) rememberRestore(bucket, key string, rr RestoreRequest) {
	t.mu.Lock()
	t.restores[bucket+"/"+key] = rr
	t.mu.Unlock()
}

func (t *Target) rememberedRestore(bucket, key string) (RestoreRequest, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rr, ok := t.restores[bucket+"/"+key]
	return rr, ok
}

func (t *Target) forgetRestore(bucket, key string) {
	t.mu.Lock()
	delete(t.restores, bucket+"/"+key)
	t.mu.Unlock()
}

// Name implements reconciler.TypedTarget.
func (t *Target) Name() string { return Name }

var (
	_ reconciler.TypedTarget[*Observation] = (*Target)(nil)
	_ reconciler.ActionValidator           = (*Target)(nil)
	_ reconciler.StorageReporter           = (*Target)(nil)
)
