package scan

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/modelsync/modelsync/internal/scan"
)

// The SARIF 2.1.0 subset GitHub code scanning reads: one run, the rules
// that fired, one result per unknown or dangerous finding located in the
// scanned file. Model files have no lines, so the region is line 1 with
// the byte offset, and each result carries its own fingerprint so that
// code scanning does not try to compute one from binary content.

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version"`
	InformationURI string      `json:"informationUri,omitempty"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifRule struct {
	ID                   string            `json:"id"`
	Name                 string            `json:"name"`
	ShortDescription     sarifText         `json:"shortDescription"`
	DefaultConfiguration map[string]string `json:"defaultConfiguration"`
	Properties           map[string]any    `json:"properties"`
}

type sarifResult struct {
	RuleID              string            `json:"ruleId"`
	Level               string            `json:"level"`
	Message             sarifText         `json:"message"`
	Locations           []sarifLocation   `json:"locations"`
	PartialFingerprints map[string]string `json:"partialFingerprints"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation map[string]string `json:"artifactLocation"`
	Region           sarifRegion       `json:"region"`
}

type sarifRegion struct {
	StartLine  int    `json:"startLine"`
	ByteOffset *int64 `json:"byteOffset,omitempty"`
}

// ruleText describes each rule family for the rules table.
var ruleText = map[string]string{
	"pickle":      "A pickle imports code when it is loaded",
	"zip":         "An archive member escapes or hides from the extraction directory",
	"safetensors": "A safetensors header disagrees with the file",
	"onnx":        "ONNX external data leaves the model directory",
	"numpy":       "A NumPy file could not be read",
	"compressed":  "A compressed file could not be read through",
	"scan":        "Scanner note",
}

// SARIF converts a report to a SARIF 2.1.0 log.
func SARIF(rep JSONReport) any {
	run := sarifRun{Tool: sarifTool{Driver: sarifDriver{Name: "modelsync-scan", Version: rep.Scanner}}, Results: []sarifResult{}}
	rules := map[string]scan.Verdict{}
	for _, t := range rep.Targets {
		for _, f := range t.Report.Files {
			uri := displayPath(t.Path, f.Path)
			uri = strings.TrimPrefix(path.Clean(uri), "./")
			for _, fd := range f.Findings {
				if fd.Verdict == scan.Safe {
					continue
				}
				rules[fd.Rule] = rules[fd.Rule].Worst(fd.Verdict)
				region := sarifRegion{StartLine: 1}
				msg := fd.Message
				if member, ok := strings.CutPrefix(fd.Path, f.Path+"!"); ok {
					msg = fmt.Sprintf("archive member %s, offset %d: %s", member, fd.Offset, msg)
				} else {
					off := fd.Offset
					region.ByteOffset = &off
					msg = fmt.Sprintf("offset %d: %s", fd.Offset, msg)
				}
				if fd.Global != "" {
					msg = fmt.Sprintf("%s %s at %s", fd.Opcode, fd.Global, msg)
				}
				fp := sha256.Sum256([]byte(fd.Rule + "\x00" + fd.Path + "\x00" + fd.Global + "\x00" + fmt.Sprint(fd.Offset)))
				run.Results = append(run.Results, sarifResult{
					RuleID:              fd.Rule,
					Level:               level(fd.Verdict),
					Message:             sarifText{Text: strings.TrimSpace(msg)},
					Locations:           []sarifLocation{{PhysicalLocation: sarifPhysical{ArtifactLocation: map[string]string{"uri": uri}, Region: region}}},
					PartialFingerprints: map[string]string{"modelsyncFinding/v1": hex.EncodeToString(fp[:16])},
				})
			}
		}
	}
	ids := make([]string, 0, len(rules))
	for id := range rules {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		family, _, _ := strings.Cut(id, ".")
		severity := "5.0"
		if rules[id] == scan.Dangerous {
			severity = "9.0"
		}
		run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{
			ID: id, Name: id, ShortDescription: sarifText{Text: ruleText[family]},
			DefaultConfiguration: map[string]string{"level": level(rules[id])},
			Properties:           map[string]any{"tags": []string{"security", "model-artifact"}, "security-severity": severity},
		})
	}
	if run.Tool.Driver.Rules == nil {
		run.Tool.Driver.Rules = []sarifRule{}
	}
	return sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{run}}
}

func level(v scan.Verdict) string {
	if v == scan.Dangerous {
		return "error"
	}
	return "warning"
}
