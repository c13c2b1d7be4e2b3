package wssec

import (
	"fmt"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// timestamp is a checked wsu:Timestamp.
type timestamp struct {
	el         *etree.Element
	createdRaw string
	created    time.Time
	expires    time.Time // zero when absent
}

// parseTimestamp applies the WSS/BSP rules: exactly one Created, at most one
// Expires, nothing else, UTC, Created not after Expires (R3203, R3224, R3221, R3223).
func parseTimestamp(el *etree.Element) (*timestamp, error) {
	ts := &timestamp{el: el}
	var created, expires int
	for _, child := range childElements(el) {
		if child.NamespaceURI() != NSWSU {
			return nil, fmt.Errorf("%w: unexpected %s", ErrTimestampMalformed, child.Tag)
		}
		switch child.Tag {
		case "Created":
			created++
			ts.createdRaw = strings.TrimSpace(child.Text())
			t, err := parseUTC(ts.createdRaw)
			if err != nil {
				return nil, fmt.Errorf("%w: Created: %v", ErrTimestampMalformed, err)
			}
			ts.created = t
		case "Expires":
			expires++
			t, err := parseUTC(strings.TrimSpace(child.Text()))
			if err != nil {
				return nil, fmt.Errorf("%w: Expires: %v", ErrTimestampMalformed, err)
			}
			ts.expires = t
		default:
			return nil, fmt.Errorf("%w: unexpected %s", ErrTimestampMalformed, child.Tag)
		}
	}
	switch {
	case created != 1:
		return nil, fmt.Errorf("%w: %d Created elements", ErrTimestampMalformed, created)
	case expires > 1:
		return nil, fmt.Errorf("%w: %d Expires elements", ErrTimestampMalformed, expires)
	case !ts.expires.IsZero() && ts.expires.Before(ts.created):
		return nil, fmt.Errorf("%w: Expires before Created", ErrTimestampMalformed)
	}
	return ts, nil
}

// parseUTC parses an xsd:dateTime that must be in UTC ("Z").
func parseUTC(s string) (time.Time, error) {
	if !strings.HasSuffix(s, "Z") {
		return time.Time{}, fmt.Errorf("%.40q is not UTC", s)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%.40q is not an xsd:dateTime", s)
	}
	return t, nil
}

// checkFreshness judges the timestamp against now: Created within
// [now-TTL, now+FutureSkew], Expires (allowing the same skew) not passed.
func (ts *timestamp) checkFreshness(p Policy, now time.Time) error {
	ttl, skew := p.ttl(), p.futureSkew()
	switch {
	case ts.created.After(now.Add(skew)):
		return fmt.Errorf("%w: created %s ahead", ErrTimestampFuture, ts.created.Sub(now).Round(time.Second))
	case ts.created.Before(now.Add(-ttl)):
		return fmt.Errorf("%w: created %s ago, TTL %s", ErrTimestampExpired, now.Sub(ts.created).Round(time.Second), ttl)
	case !ts.expires.IsZero() && ts.expires.Add(skew).Before(now):
		return fmt.Errorf("%w: expired %s ago", ErrTimestampExpired, now.Sub(ts.expires).Round(time.Second))
	case ts.expires.IsZero() && p.RequireExpires:
		return fmt.Errorf("%w: no Expires", ErrTimestampMalformed)
	}
	return nil
}

func (p Policy) ttl() time.Duration {
	if p.TimestampTTL > 0 {
		return p.TimestampTTL
	}
	return 300 * time.Second
}

func (p Policy) futureSkew() time.Duration {
	if p.FutureSkew > 0 {
		return p.FutureSkew
	}
	return 60 * time.Second
}

func (p Policy) requires(part Part) bool {
	for _, r := range p.RequireSigned {
		if r == part {
			return true
		}
	}
	return false
}
