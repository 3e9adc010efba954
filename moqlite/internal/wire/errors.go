package wire

import (
	"errors"
	"fmt"
)

// ErrProtocol is wrapped by every error that means the peer broke the
// protocol: the session that read it must close.
var ErrProtocol = errors.New("moq-lite: protocol violation")

// ErrTooLarge is wrapped (with ErrProtocol) when a length prefix, string or
// count is past the cap the reader allowed.
var ErrTooLarge = errors.New("moq-lite: message past its size cap")

func violation(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}

func tooLarge(what string, n, limit uint64) error {
	return fmt.Errorf("%w: %w: %s of %d bytes, cap %d", ErrProtocol, ErrTooLarge, what, n, limit)
}
