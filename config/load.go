package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
)

// ErrEmpty means the configuration document holds nothing.
var ErrEmpty = errors.New("config: empty document")

// ErrMultipleDocuments means the file holds more than one YAML document.
var ErrMultipleDocuments = errors.New("config: more than one YAML document")

// ErrDecode wraps every YAML syntax or type error, including unknown keys;
// the wrapped text names the line and the key. Check says the same in the
// file's terms, all at once.
var ErrDecode = errors.New("config: cannot decode")

// Load decodes one YAML document strictly (unknown keys are errors) and
// applies defaults. It does not validate: call Validate on the result.
func Load(data []byte) (cfg *Config, err error) {
	// yaml.v3 is third-party code handed operator input; a panic in it must
	// surface as an error, never take the process down.
	defer func() {
		if r := recover(); r != nil {
			cfg, err = nil, fmt.Errorf("%w: parser failure", ErrDecode)
		}
	}()

	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ErrEmpty
		}
		return nil, fmt.Errorf("%w: %v", ErrDecode, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, ErrMultipleDocuments
	}
	c.SetDefaults()
	return &c, nil
}

// UnmarshalYAML reads a Go duration string such as "30s" or "5m".
// Negative durations and bare numbers are refused.
func (d *Duration) UnmarshalYAML(value *yaml.Node) error {
	if value.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: duration must be a string like \"30s\"", value.Line)
	}
	v, reason := parseDuration(value.Value)
	if reason != "" {
		return fmt.Errorf("line %d: %s", value.Line, reason)
	}
	*d = v
	return nil
}

// parseDuration parses a duration value, or says why it is not one.
func parseDuration(s string) (Duration, string) {
	v, err := time.ParseDuration(s)
	switch {
	case err != nil && isNumber(s):
		return 0, fmt.Sprintf("duration %q has no unit (use e.g. \"30s\", \"5m\")", s)
	case err != nil:
		return 0, fmt.Sprintf("invalid duration %q (use e.g. \"30s\", \"5m\")", s)
	case v < 0:
		return 0, fmt.Sprintf("negative duration %q", s)
	}
	return Duration(v), ""
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// MarshalYAML writes the duration in Go syntax, so a loaded config round-trips.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats the duration like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }
