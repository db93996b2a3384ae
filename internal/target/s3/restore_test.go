package s3

import (
	"testing"
	"time"
)

func TestParseRestore(t *testing.T) {
	cases := []struct {
		in      string
		want    RestoreStatus
		wantErr bool
	}{
		{in: "", want: RestoreStatus{}},
		{in: `ongoing-request="true"`, want: RestoreStatus{Requested: true, Ongoing: true}},
		{in: `ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"`,
			want: RestoreStatus{Requested: true, Expiry: time.Date(2012, 12, 21, 0, 0, 0, 0, time.UTC)}},
		{in: `expiry-date="Fri, 21 Dec 2012 00:00:00 GMT", ongoing-request="false"`,
			want: RestoreStatus{Requested: true, Expiry: time.Date(2012, 12, 21, 0, 0, 0, 0, time.UTC)}},
		{in: `ongoing-request="maybe"`, wantErr: true},
		{in: `ongoing-request="false", expiry-date="tomorrow"`, wantErr: true},
		{in: `expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"`, wantErr: true},
	}
	for _, c := range cases {
		got, err := ParseRestore(c.in)
		if (err != nil) != c.wantErr {
			t.Errorf("ParseRestore(%q) error = %v, want error %v", c.in, err, c.wantErr)
			continue
		}
		if !c.wantErr && !got.Expiry.Equal(c.want.Expiry) || got.Requested != c.want.Requested || got.Ongoing != c.want.Ongoing {
			t.Errorf("ParseRestore(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
	if s, _ := ParseRestore(`ongoing-request="true"`); s.Readable() {
		t.Error("an ongoing restore is not readable")
	}
	if s, _ := ParseRestore(`ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"`); !s.Readable() {
		t.Error("a finished restore is readable")
	}
}

func TestRestoreTagRoundTrip(t *testing.T) {
	rr := RestoreRequest{Tier: TierBulk, At: time.Date(2026, 11, 26, 8, 30, 0, 0, time.UTC)}
	got, ok := parseRestoreTag(rr.tagValue())
	if !ok || got.Tier != rr.Tier || !got.At.Equal(rr.At) {
		t.Fatalf("parseRestoreTag(%q) = %+v, %v", rr.tagValue(), got, ok)
	}
	for _, bad := range []string{"", "Standard", "@2026-11-26T08:30:00Z", "Standard@yesterday"} {
		if _, ok := parseRestoreTag(bad); ok {
			t.Errorf("parseRestoreTag(%q) accepted", bad)
		}
	}
}

func TestParseURI(t *testing.T) {
	loc, err := ParseURI("s3://models/mlruns/1/abc/artifacts/model/")
	if err != nil || loc.Bucket != "models" || loc.Prefix != "mlruns/1/abc/artifacts/model" {
		t.Fatalf("ParseURI = %+v, %v", loc, err)
	}
	if loc.String() != "s3://models/mlruns/1/abc/artifacts/model" {
		t.Errorf("String = %q", loc.String())
	}
	for _, bad := range []string{"gs://b/p", "mlflow-artifacts:/1/x", "s3:///p", "s3://bucket", "s3://bucket/", "/local/path"} {
		if _, err := ParseURI(bad); err == nil {
			t.Errorf("ParseURI(%q) accepted", bad)
		}
	}
}
