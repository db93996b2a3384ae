package serve_test

// Issue 12, bug 5: a standby replica wrote Kubernetes Events (SyncFailed)
// although only the Lease holder may write. Checked from the API server's
// side: its audit log names the user behind every request, and each
// replica authenticates with a client certificate of its own.

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/controller"
	"github.com/modelsync/modelsync/test/testenv"
)

// Two serve replicas with leader election on a real kube-apiserver; the
// standby's first pass meets a model that cannot be planned. Until it
// holds the Lease, the standby sends no create, update, patch or delete of
// any kind (Events included); once the leader dies and the standby takes
// the Lease, its writes show up under its name, so the check can see them.
func TestServeStandbyNeverWrites(t *testing.T) {
	kube := testenv.NewKubeWith(t, testenv.KubeOptions{AuditLog: true})
	ctx := context.Background()
	ns, err := kube.NewNamespace(ctx, "modelsync")
	if err != nil {
		t.Fatal(err)
	}
	f := newCrashFixture(t)
	// fraud-detector-xgb runs v2 in dev; without v2 in MLflow every pass
	// fails that model (and today records a SyncFailed Event for it).
	const fraud = "fraud-detector-xgb"
	if err := f.admin.DeleteModelVersion(ctx, fraud, 2); err != nil {
		t.Fatal(err)
	}
	const userA, userB = "modelsync-replica-a", "modelsync-replica-b"
	replica := func(user string) *serveProc {
		t.Helper()
		kc, err := kube.UserKubeconfig(user, "system:masters")
		if err != nil {
			t.Fatal(err)
		}
		return startServe(t, append(f.env, "MODELSYNC_CACHE_DIR="+t.TempDir()), "--repo", f.repo, "--kserve", "--kubeconfig", kc,
			"--leader-elect", "--leader-election-namespace", ns, "--concurrency", "2")
	}
	firstPass := func(p *serveProc, leader bool) func() bool {
		return func() bool {
			st, err := p.status(t)
			if err != nil {
				return false
			}
			ok, _ := attempted(st)
			r, _ := row(st, fraud, "dev")
			return ok && st.Leader == leader && r.State == controller.StateFailed
		}
	}

	a := replica(userA)
	waitUntil(t, "replica A leads", 60*time.Second, a.leader)
	waitUntil(t, "replica A's first pass", 90*time.Second, firstPass(a, true))
	b := replica(userB)
	waitUntil(t, "replica B's first pass, as a standby, failing "+fraud, 90*time.Second, firstPass(b, false))
	if a.leader() == b.leader() {
		t.Fatalf("leaders: A %v, B %v", a.leader(), b.leader())
	}

	// The leader dies; the standby takes the Lease (15 s lease duration).
	a.kill9()
	waitUntil(t, "replica B takes over", 60*time.Second, b.leader)
	var acquired *testenv.AuditEvent
	waitUntil(t, "the apiserver to record B's Lease write", 30*time.Second, func() bool {
		evs, err := kube.AuditEvents()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.User.Username == userB && e.IsWrite() && e.ObjectRef != nil && e.ObjectRef.Resource == "leases" && e.Code()/100 == 2 {
				acquired = &e
				return true
			}
		}
		return false
	})

	evs, err := kube.AuditEvents()
	if err != nil {
		t.Fatal(err)
	}
	var early []string
	byA, agents := 0, map[string]string{}
	for _, e := range evs {
		switch e.User.Username {
		case userA:
			agents[userA] = e.UserAgent
			if e.IsWrite() {
				byA++
			}
		case userB:
			agents[userB] = e.UserAgent
			// Campaigning for the Lease is the one write a standby makes.
			if e.IsWrite() && e.RequestReceivedTimestamp.Before(acquired.RequestReceivedTimestamp) && (e.ObjectRef == nil || e.ObjectRef.Resource != "leases") {
				early = append(early, e.String())
			}
		}
	}
	if byA == 0 {
		t.Fatalf("the audit log shows no write by the leader %s; requests are not attributed to replicas", userA)
	}
	t.Logf("user agents: A %q, B %q", agents[userA], agents[userB])
	// Where replicas share one ServiceAccount, the user agent is what tells
	// them apart: each names its leader-election identity.
	for _, e := range evs {
		if (e.User.Username == userA || e.User.Username == userB) && e.UserAgent != agents[e.User.Username] {
			t.Errorf("%s sent two user agents: %q and %q", e.User.Username, e.UserAgent, agents[e.User.Username])
		}
	}
	for _, u := range []string{userA, userB} {
		if !strings.HasPrefix(agents[u], "modelsync/") || !strings.HasSuffix(agents[u], ")") {
			t.Errorf("%s's user agent %q does not name the replica", u, agents[u])
		}
	}
	if agents[userA] == agents[userB] {
		t.Errorf("both replicas send the user agent %q", agents[userA])
	}
	if len(early) > 0 {
		t.Fatalf("the standby %s sent %d write(s) before it held the Lease (acquired at %s):\n  %s",
			userB, len(early), acquired.RequestReceivedTimestamp.Format(time.RFC3339Nano), strings.Join(early, "\n  "))
	}
}
