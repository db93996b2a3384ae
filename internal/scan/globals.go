package scan

type classifier struct{ extra []string }

func newClassifier(extra []string) *classifier { return &classifier{extra: extra} }
