package storage

import "errors"

// ErrInvalidName is wrapped by the error a storage returns for a name that
// CheckName refuses.
var ErrInvalidName = errors.New("invalid storage name")
