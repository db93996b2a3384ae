package controller

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

func (c *Controller) leaderContext() context.Context {
	c.leaderMu.Lock()
	defer c.leaderMu.Unlock()
	return c.leaderCtx
}

// setLeader lets this replica write with ctx (nil: stop writing). On
// becoming leader it resyncs everything: the standby's view may be stale
// and the old leader may have stopped halfway.
func (c *Controller) setLeader(ctx context.Context) {
	c.leaderMu.Lock()
	c.leaderCtx = ctx
	c.leaderMu.Unlock()
	if ctx != nil {
		c.Resync()
	}
}

// runLeaderElection campaigns for the Lease until ctx ends; after losing
// it, the replica becomes a standby and campaigns again.
func (c *Controller) runLeaderElection(ctx context.Context) {
	le := c.opts.LeaderElection
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: le.Namespace, Name: le.Name},
		Client:     le.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: c.identity},
	}
	for ctx.Err() == nil {
		elector, err := leaderelection.NewLeaderElector(c.electorConfig(lock))
		if err != nil {
			c.log.Error("leader election misconfigured", "error", err)
			return
		}
		elector.Run(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(le.RetryPeriod):
		}
	}
}

// electorConfig is what the elector runs with: the Lease timings of the
// options and callbacks that switch writing on and off.
func (c *Controller) electorConfig(lock resourcelock.Interface) leaderelection.LeaderElectionConfig {
	le := c.opts.LeaderElection
	return leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   le.LeaseDuration,
		RenewDeadline:   le.RenewDeadline,
		RetryPeriod:     le.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            le.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) {
				c.log.Info("became leader", "identity", c.identity, "lease", le.Namespace+"/"+le.Name)
				c.setLeader(lctx)
			},
			OnStoppedLeading: func() {
				c.log.Info("stopped leading", "identity", c.identity)
				c.setLeader(nil)
			},
		},
	}
}
