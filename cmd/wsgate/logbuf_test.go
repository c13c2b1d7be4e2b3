package main

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// writes records each Write call to the output.
type writes struct {
	mu    sync.Mutex
	calls []string
}

func (w *writes) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, string(p))
	return len(p), nil
}

func (w *writes) got() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.calls...)
}

// INFO lines (and below) wait in the buffer; a warning or an error
// reaches the output at once, after them, in order.
func TestBufferedLoggerFlushes(t *testing.T) {
	tests := []struct {
		name    string
		level   slog.Level
		msg     string
		flushed bool
	}{
		{"access info held", slog.LevelInfo, "access", false},
		{"other info held", slog.LevelInfo, "wsgate listening", false},
		{"debug held", slog.LevelDebug, "detail", false},
		{"access warn flushed", slog.LevelWarn, "access", true},
		{"error flushed", slog.LevelError, "upstream request failed", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := &writes{}
			lv := &slog.LevelVar{}
			lv.Set(slog.LevelDebug)
			buf := newLogBuffer(out)
			h := newLeveledLogger("json", lv, buf).Handler()
			logger := slog.New(flushingHandler{Handler: h, buf: buf}).With(slog.String("k", "v"))
			logger.Info("access", slog.Int("n", 1))
			logger.Log(context.Background(), tc.level, tc.msg, slog.Int("n", 2))
			calls := out.got()
			if !tc.flushed {
				if len(calls) != 0 {
					t.Fatalf("written before a flush: %q", calls)
				}
				if err := buf.Flush(); err != nil {
					t.Fatal(err)
				}
				calls = out.got()
			}
			if len(calls) != 1 {
				t.Fatalf("want one write of both lines, got %q", calls)
			}
			lines := strings.Split(strings.TrimSuffix(calls[0], "\n"), "\n")
			if len(lines) != 2 || !strings.Contains(lines[0], `"n":1`) || !strings.Contains(lines[1], `"n":2`) ||
				!strings.Contains(lines[1], `"k":"v"`) {
				t.Errorf("lines out of order or incomplete: %q", lines)
			}
		})
	}
}

// Every write to the output is a run of whole lines, whatever their sizes.
func TestLogBufferKeepsLinesWhole(t *testing.T) {
	out := &writes{}
	buf := newLogBuffer(out)
	sizes := []int{100, logBufferSize - 150, 200, 30, logBufferSize + 10, 5}
	for i, n := range sizes {
		line := strings.Repeat(string(rune('a'+i)), n-1) + "\n"
		if _, err := buf.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if err := buf.Flush(); err != nil {
		t.Fatal(err)
	}
	var total int
	for _, c := range out.got() {
		if !strings.HasSuffix(c, "\n") {
			t.Errorf("a write ends mid-line: ...%q", c[max(0, len(c)-10):])
		}
		for _, l := range strings.Split(strings.TrimSuffix(c, "\n"), "\n") {
			if strings.Trim(l, l[:1]) != "" {
				t.Errorf("a line was split or mixed: %q...", l[:min(len(l), 20)])
			}
			total++
		}
	}
	if total != len(sizes) {
		t.Errorf("%d lines written, want %d", total, len(sizes))
	}
}

// The ticker flushes held lines, and stop flushes the last ones.
func TestLogBufferFlushEvery(t *testing.T) {
	out := &writes{}
	buf := newLogBuffer(out)
	stop := buf.flushEvery(10 * time.Millisecond)
	_, _ = buf.Write([]byte("one\n"))
	deadline := time.Now().Add(5 * time.Second)
	for len(out.got()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := out.got(); len(got) != 1 || got[0] != "one\n" {
		t.Fatalf("ticker flush: %q", got)
	}
	_, _ = buf.Write([]byte("two\n"))
	stop()
	if got := out.got(); len(got) != 2 || got[1] != "two\n" {
		t.Errorf("stop did not flush: %q", got)
	}
}
