// Command s3copy measures modelsync's server-side multipart copy against a
// single CopyObject on one MinIO server.
//
// It generates a 6 GiB and a 4 GiB object, then changes their storage class
// in place (STANDARD → REDUCED_REDUNDANCY, the only other class MinIO has):
//
//   - the 4 GiB object with one CopyObject: the reference rate;
//   - the 6 GiB object through the storage target (plan, then apply), which
//     must take the multipart path because CopyObject is limited to 5 GiB;
//   - optionally the 6 GiB object with one CopyObject, which AWS refuses
//     above 5 GiB but MinIO (limit 5 TiB) accepts: the same-size reference.
//
// It prints the rates side by side (goal: multipart ≥ 0.8 × the single copy)
// and the process's peak RSS during the copies, which stays small because
// no object bytes pass through modelsync. Objects and the server's data are
// deleted at the end.
//
//	go run ./test/bench/s3copy [-big-gib 6] [-ref-gib 4] [-part-mib 64] [-concurrency 4]
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/modelsync/modelsync/internal/manifest"
	s3target "github.com/modelsync/modelsync/internal/target/s3"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/test/testenv"
)

const (
	bucket    = "bench"
	rrs       = "REDUCED_REDUNDANCY"
	genPartSz = 64 << 20
)

type options struct {
	bigGiB, refGiB int
	partMiB        int
	concurrency    int
	singleLarge    bool
}

func main() {
	var o options
	flag.IntVar(&o.bigGiB, "big-gib", 6, "size of the object copied with a multipart copy, GiB (> 5)")
	flag.IntVar(&o.refGiB, "ref-gib", 4, "size of the object copied with one CopyObject, GiB (≤ 5)")
	flag.IntVar(&o.partMiB, "part-mib", 64, "minimum part size of the multipart copy, MiB")
	flag.IntVar(&o.concurrency, "concurrency", 4, "parallel UploadPartCopy requests")
	flag.BoolVar(&o.singleLarge, "single-large", true, "also copy the large object with one CopyObject (MinIO accepts it; AWS would not)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "s3copy:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) (err error) {
	if int64(o.bigGiB)<<30 <= s3target.MaxCopyObjectSize || int64(o.refGiB)<<30 > s3target.MaxCopyObjectSize {
		return fmt.Errorf("-big-gib must exceed 5 and -ref-gib must not")
	}
	// MinIO writes the source, and each in-place copy writes a new copy
	// before dropping the old one.
	need := uint64(2*(o.bigGiB+o.refGiB)+2) << 30
	if free, err := freeBytes(os.TempDir()); err != nil {
		return err
	} else if free < need {
		return fmt.Errorf("%s has %s free, the benchmark needs about %s", os.TempDir(), gib(int64(free)), gib(int64(need)))
	}
	df("before")
	srv, err := testenv.StartMinIO(ctx, "")
	if err != nil {
		return err
	}
	defer func() {
		err = errors.Join(err, srv.Close())
		df("after cleanup")
	}()
	c := srv.Client(ctx)
	if err := srv.MakeBucket(ctx, bucket, false); err != nil {
		return err
	}
	bigKey := "runs/big/artifacts/model/weights.bin"
	refKey := "runs/ref/artifacts/model/weights.bin"
	defer func() {
		for _, k := range []string{bigKey, refKey} {
			_, derr := c.DeleteObject(context.WithoutCancel(ctx), &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)})
			err = errors.Join(err, derr)
		}
	}()

	start := time.Now()
	for _, obj := range []struct {
		key string
		gib int
	}{{refKey, o.refGiB}, {bigKey, o.bigGiB}} {
		if err := generate(ctx, c, obj.key, int64(obj.gib)<<30, uint64(obj.gib)); err != nil {
			return err
		}
	}
	fmt.Printf("generated %d GiB + %d GiB on MinIO in %s\n", o.bigGiB, o.refGiB, time.Since(start).Round(time.Second))
	df("with objects")

	// Peak RSS from here on is the copies', not the generator's buffers.
	runtime.GC()
	debug.FreeOSMemory()
	hwmReset := resetPeakRSS()

	refSecs, err := singleCopy(ctx, c, refKey)
	if err != nil {
		return fmt.Errorf("single CopyObject of %d GiB: %w", o.refGiB, err)
	}

	reg := registry{uri: "s3://" + bucket + "/runs/big/artifacts/model", created: time.Now().Add(-60 * 24 * time.Hour)}
	var parts int
	tg, err := s3target.New(s3target.Config{
		Client: c, Locator: reg, Versions: reg,
		MinPartSize: int64(o.partMiB) << 20, Concurrency: o.concurrency,
		// MinIO cannot checksum copied parts.
		MultipartChecksum: s3target.ChecksumNone,
		Progress: func(ev s3target.ProgressEvent) {
			parts = ev.PartsTotal
			if ev.Done || ev.PartsDone%16 == 0 {
				fmt.Fprintf(os.Stderr, "  multipart: %d/%d parts, %s, %.0f MiB/s\n", ev.PartsDone, ev.PartsTotal, gib(ev.BytesDone), ev.Rate/(1<<20))
			}
		},
	})
	if err != nil {
		return err
	}
	l := manifest.Lifecycle{ActiveClass: "STANDARD", ArchivedClass: rrs, ArchiveAfter: manifest.Duration{Duration: 24 * time.Hour},
		RollbackWindow: manifest.Duration{Duration: time.Hour}}
	desired := &reconciler.DesiredState{Revision: "bench", Models: []reconciler.DesiredModel{{Name: "bench", RegisteredModel: "bench", Lifecycle: l}}}
	plan, err := reconciler.BuildPlan(ctx, desired, []reconciler.Target{reconciler.Typed(tg)})
	if err != nil {
		return err
	}
	if len(plan.Actions()) != 1 || len(plan.Errors()) != 0 {
		return fmt.Errorf("expected one transition, got %d actions and errors %v", len(plan.Actions()), plan.Errors())
	}
	t0 := time.Now()
	if err := tg.Apply(ctx, plan.Actions()[0]); err != nil {
		return fmt.Errorf("multipart copy of %d GiB: %w", o.bigGiB, err)
	}
	bigSecs := time.Since(t0).Seconds()
	h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(bigKey)})
	if err != nil {
		return err
	}
	if got := string(h.StorageClass); got != rrs || aws.ToInt64(h.ContentLength) != int64(o.bigGiB)<<30 {
		return fmt.Errorf("after the multipart copy: class %q size %d", got, aws.ToInt64(h.ContentLength))
	}

	// The storage target refuses a CopyObject threshold above 5 GiB, so it
	// never sends AWS a single copy it would reject.
	_, thresholdErr := s3target.New(s3target.Config{Client: c, Locator: reg, Versions: reg, CopyThreshold: s3target.MaxCopyObjectSize + 1})

	var largeSingleSecs float64
	var largeSingleErr error
	if o.singleLarge {
		largeSingleSecs, largeSingleErr = singleCopy(ctx, c, bigKey)
	}
	peak, peakErr := peakRSS()

	refRate := float64(int64(o.refGiB)<<30) / refSecs
	bigRate := float64(int64(o.bigGiB)<<30) / bigSecs
	fmt.Println()
	fmt.Printf("%-8s %-52s %6s %8s %9s\n", "OBJECT", "METHOD", "PARTS", "SECONDS", "MiB/s")
	fmt.Printf("%-8s %-52s %6d %8.1f %9.0f\n", fmt.Sprintf("%d GiB", o.refGiB), "single CopyObject", 1, refSecs, refRate/(1<<20))
	fmt.Printf("%-8s %-52s %6d %8.1f %9.0f   %.2f× the single copy's rate (goal ≥ 0.80)\n", fmt.Sprintf("%d GiB", o.bigGiB),
		fmt.Sprintf("modelsync multipart copy (%d MiB parts, %d at once)", partSize(int64(o.bigGiB)<<30, int64(o.partMiB)<<20)>>20, o.concurrency),
		parts, bigSecs, bigRate/(1<<20), bigRate/refRate)
	if o.singleLarge {
		if largeSingleErr != nil {
			fmt.Printf("%-8s %-52s refused: %v\n", fmt.Sprintf("%d GiB", o.bigGiB), "single CopyObject", largeSingleErr)
		} else {
			r := float64(int64(o.bigGiB)<<30) / largeSingleSecs
			fmt.Printf("%-8s %-52s %6d %8.1f %9.0f   accepted by MinIO (limit 5 TiB); AWS refuses above 5 GiB\n",
				fmt.Sprintf("%d GiB", o.bigGiB), "single CopyObject", 1, largeSingleSecs, r/(1<<20))
		}
	}
	fmt.Printf("\nstorage.New with CopyThreshold 5 GiB + 1 byte: %v\n", thresholdErr)
	switch {
	case peakErr != nil:
		fmt.Printf("peak RSS: unknown (%v)\n", peakErr)
	case hwmReset:
		fmt.Printf("peak RSS of this process during the copies: %s\n", mib(peak))
	default:
		fmt.Printf("peak RSS of this process (including generating the objects; /proc/self/clear_refs refused): %s\n", mib(peak))
	}
	return nil
}

func partSize(size, minPart int64) int64 {
	p, _, _ := s3target.PartSize(size, minPart)
	return p
}

// singleCopy changes the class of key with one CopyObject, as modelsync's
// single-part path does, and returns the seconds it took.
func singleCopy(ctx context.Context, c *s3.Client, key string) (float64, error) {
	h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return 0, err
	}
	to := types.StorageClass(rrs)
	if h.StorageClass == to {
		to = types.StorageClassStandard
	}
	t0 := time.Now()
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key),
		CopySource:        aws.String(bucket + "/" + key),
		CopySourceIfMatch: h.ETag,
		StorageClass:      to,
		MetadataDirective: types.MetadataDirectiveCopy,
	})
	return time.Since(t0).Seconds(), err
}

// generate uploads size pseudo-random bytes (MinIO does not compress by
// default, but zeros would flatter any store that does).
func generate(ctx context.Context, c *s3.Client, key string, size int64, seed uint64) (err error) {
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_, _ = c.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId})
		}
	}()
	n := int((size + genPartSz - 1) / genPartSz)
	parts := make([]types.CompletedPart, n)
	g, gctx := errgroup.WithContext(ctx)
	const workers = 2
	for w := range workers {
		g.Go(func() error {
			buf := make([]byte, genPartSz)
			for i := w; i < n; i += workers {
				length := min(int64(genPartSz), size-int64(i)*genPartSz)
				rng := rand.NewChaCha8([32]byte{byte(seed), byte(i), byte(i >> 8)})
				_, _ = rng.Read(buf[:length])
				out, err := c.UploadPart(gctx, &s3.UploadPartInput{
					Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId,
					PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(buf[:length]),
				})
				if err != nil {
					return fmt.Errorf("generating %s part %d: %w", key, i+1, err)
				}
				parts[i] = types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.ETag}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	return err
}

// registry answers for the one benchmark version.
type registry struct {
	uri     string
	created time.Time
}

func (r registry) ArtifactURI(context.Context, string, int) (string, error) { return r.uri, nil }

func (r registry) ListVersions(context.Context, string) ([]reconciler.RegistryVersion, error) {
	return []reconciler.RegistryVersion{{Version: 1, Created: r.created}}, nil
}

// resetPeakRSS restarts the kernel's high-water mark of this process.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

func peakRSS() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}

func freeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

func df(when string) {
	out, err := exec.Command("df", "-h", "/work", os.TempDir()).Output()
	if err != nil {
		return
	}
	fmt.Printf("df -h (%s):\n%s", when, out)
}

func gib(n int64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
