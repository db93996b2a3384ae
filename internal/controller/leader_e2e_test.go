package controller

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/modelsync/modelsync/test/testenv"
)

// aliasWrites counts alias writes that reached MLflow through a proxy.
func aliasWrites(p *testenv.FaultProxy) int {
	n := 0
	for _, r := range p.Requests() {
		if r.Method != http.MethodGet && strings.HasSuffix(r.Path, "/registered-models/alias") && r.Status == http.StatusOK {
			n++
		}
	}
	return n
}

func writes(p *testenv.FaultProxy) int {
	n := 0
	for _, r := range p.Requests() {
		if r.Method != http.MethodGet {
			n++
		}
	}
	return n
}

// Two replicas share a Lease on a real kube-apiserver: only the leader
// writes; when it stops, the standby takes over and applies the next change
// exactly once.
func TestLeaderElectionHandover(t *testing.T) {
	e := newEnv(t)
	kube := testenv.NewKube(t)
	cs, err := kubernetes.NewForConfig(kube.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := kube.NewNamespace(t.Context(), "lease")
	if err != nil {
		t.Fatal(err)
	}
	proxyA, err := testenv.NewFaultProxy(e.mlflow.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxyA.Close() })
	proxyB, err := testenv.NewFaultProxy(e.mlflow.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxyB.Close() })
	for _, name := range []string{"models-dev", "models-staging", "models-prod"} {
		if _, err := cs.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	le := func(id string) func(*Options) {
		return func(o *Options) {
			o.Events = cs
			o.LeaderElection = &LeaderElection{Client: cs, Namespace: ns, Identity: id,
				LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond}
		}
	}
	a := e.start(proxyA.URL, le("replica-a"))
	eventually(t, "replica-a leads", func() (bool, string) { return a.IsLeader(), "" })
	a.waitSynced(t, "")
	b := e.start(proxyB.URL, le("replica-b"))
	eventually(t, "replica-b planned as standby", func() (bool, string) {
		st := b.Status()
		for _, row := range st.Rows {
			if row.State != StateSynced {
				return false, fmt.Sprintf("%s/%s %s", row.Model, row.Environment, row.State)
			}
		}
		return st.Ready && len(st.Rows) > 0 && !st.Leader, fmt.Sprint("leader=", st.Leader)
	})

	sha := e.commit("churn dev to v4", e.setVersion(churn, "dev", 5, 4))
	a.Trigger("test")
	b.Trigger("test")
	eventually(t, "leader applied v4", func() (bool, string) {
		got := e.alias(churn, "dev")
		return got == 4, fmt.Sprint(got)
	})
	a.waitSynced(t, sha)
	// The standby planned before the leader applied; ask it to look again.
	if resp := postJSON(t, b.srv.URL+"/api/v1/reconcile", ReconcileRequest{Model: churn}); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("reconcile on the standby: %d", resp.StatusCode)
	}
	eventually(t, "standby sees the new revision", func() (bool, string) {
		row, _ := b.row(churn, "dev")
		return strings.HasSuffix(row.DesiredRevision, sha) && row.State == StateSynced && row.Live == "v4", fmt.Sprintf("%+v", row)
	})
	if n := writes(proxyB); n != 0 {
		t.Fatalf("standby wrote %d times while replica-a led", n)
	}
	if n := aliasWrites(proxyA); n == 0 {
		t.Fatal("leader wrote no alias")
	}

	a.stop()
	aAfter := writes(proxyA)
	eventually(t, "replica-b takes over", func() (bool, string) { return b.IsLeader(), "" })
	if n := writes(proxyB); n != 0 {
		t.Fatalf("new leader re-wrote converged state: %d writes", n)
	}
	sha = e.commit("churn dev to v3", e.setVersion(churn, "dev", 4, 3))
	b.Trigger("test")
	eventually(t, "new leader applied v3", func() (bool, string) {
		got := e.alias(churn, "dev")
		return got == 3, fmt.Sprint(got)
	})
	b.waitSynced(t, sha)
	if n := aliasWrites(proxyB); n != 1 {
		t.Fatalf("new leader wrote the dev alias %d times, want once", n)
	}
	if n := writes(proxyA); n != aAfter {
		t.Fatalf("stopped leader wrote %d more times", n-aAfter)
	}

	// One Synced event per transition on churn's dev InferenceService:
	// the first sync, v4 by replica-a, v3 by replica-b; the takeover itself
	// adds none.
	evs, err := cs.CoreV1().Events("models-dev").List(t.Context(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + churn})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, ev := range evs.Items {
		if ev.Reason != "Synced" || ev.InvolvedObject.Kind != "InferenceService" {
			t.Errorf("unexpected event %s: %s", ev.Reason, ev.Message)
		}
		msgs = append(msgs, ev.Message)
	}
	slices.Sort(msgs)
	if len(msgs) != 3 || !slices.ContainsFunc(msgs, func(m string) bool { return strings.HasPrefix(m, "dev v3 at ") && strings.HasSuffix(m, sha) }) {
		t.Fatalf("events on %s in models-dev: %q", churn, msgs)
	}
}
