// Package cli holds what idledger's commands share: the progress bar of the offline commands,
// the Go runtime's soft memory limit and the JSON logger.
package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// Progress draws a progress bar with rate and ETA on stderr for offline commands: redrawn in
// place on a terminal, one line every few seconds otherwise (logs, CI).
type Progress struct {
	w        io.Writer
	label    string
	tty      bool
	start    time.Time
	mu       sync.Mutex // guards last, lastLine
	last     time.Time
	lastLine string
}

// NewProgress returns a bar writing to w; commands share it so every progress display looks
// the same.
func NewProgress(w io.Writer, label string) *Progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &Progress{w: w, label: label, tty: tty, start: time.Now()}
}

// Update reports done of total units; it is cheap to call often.
func (p *Progress) Update(done, total uint64) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	every := 2 * time.Second
	if p.tty {
		every = 100 * time.Millisecond
	}
	if done < total && now.Sub(p.last) < every {
		return
	}
	p.last = now
	p.lastLine = p.render(done, total, now)
	if p.tty {
		fmt.Fprintf(p.w, "\r%s", p.lastLine)
	} else {
		fmt.Fprintln(p.w, p.lastLine)
	}
}

func (p *Progress) render(done, total uint64, now time.Time) string {
	elapsed := now.Sub(p.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(done) / elapsed
	}
	frac := 1.0
	if total > 0 {
		frac = min(float64(done)/float64(total), 1)
	}
	const width = 30
	filled := int(frac * width)
	eta := "--"
	if rate > 0 && total >= done {
		eta = (time.Duration(float64(total-done)/rate) * time.Second).Round(time.Second).String()
	}
	return fmt.Sprintf("%s [%s%s] %5.1f%% %d/%d  %.0f events/s  ETA %s", p.label,
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled), frac*100, done, total, rate, eta)
}

// Done ends the bar's line.
func (p *Progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.lastLine != "" {
		fmt.Fprintln(p.w)
	}
}

// NewLogger returns the JSON logger every command uses.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}
