// Package analysis holds the statistics behind canary analysis: exact
// per-arm counts from Prometheus counter samples, an anytime-valid
// non-inferiority test per metric whose evidence carries across weight
// steps, a sample-ratio-mismatch check, and the decision that turns them
// into advance, promote, rollback, hold or inconclusive.
//
// It is pure: no I/O, no clock, no package-level mutable state. The caller
// (the controller) reads counters, keeps the State in the cluster between
// looks and acts on the Decision. Every function takes the time of the look
// as an argument so a look can be replayed.
//
// Why anytime-valid: the controller looks at a canary every interval, and a
// test built for a single look (a z-test, or "effect size > 2 and n > 30")
// re-run at every look raises false alarms far above its nominal level. The
// tests here are test martingales, so by Ville's inequality the chance that
// they ever reject a true null, however often they are looked at, stays
// below their level.
package analysis
