package webrtc

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// loggerFactory routes pion's logs to the server's logger at debug level:
// pion reports routine network events (a client that vanished, a closed
// channel) as warnings and errors, which would be noise at info level, and
// what matters to an operator the adapter logs itself.
type loggerFactory struct{ log *slog.Logger }

func newLoggerFactory(log *slog.Logger) loggerFactory { return loggerFactory{log} }

func (f loggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{f.log.With(slog.String("pion", scope))}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) logf(level, format string, args ...any) {
	if !l.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	l.log.LogAttrs(context.Background(), slog.LevelDebug, fmt.Sprintf(format, args...), slog.String("pion_level", level))
}

func (pionLogger) Trace(string)          {}
func (pionLogger) Tracef(string, ...any) {}
func (l pionLogger) Debug(msg string)    { l.logf("debug", "%s", msg) }
func (l pionLogger) Debugf(format string, args ...any) {
	l.logf("debug", format, args...)
}
func (l pionLogger) Info(msg string)                  { l.logf("info", "%s", msg) }
func (l pionLogger) Infof(format string, args ...any) { l.logf("info", format, args...) }
func (l pionLogger) Warn(msg string)                  { l.logf("warn", "%s", msg) }
func (l pionLogger) Warnf(format string, args ...any) { l.logf("warn", format, args...) }
func (l pionLogger) Error(msg string)                 { l.logf("error", "%s", msg) }
func (l pionLogger) Errorf(format string, args ...any) {
	l.logf("error", format, args...)
}
