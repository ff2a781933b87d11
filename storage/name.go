// Package storage holds what every storage of the HLS stream shares: the
// rule for which names are allowed. The storages themselves are
// storage/local (a directory the web server serves) and storage/s3 (an
// S3-compatible bucket viewers fetch from).
package storage

import (
	"fmt"
	"io/fs"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen bounds a name in bytes. S3 keys stop at 1024 bytes and a path
// prefix comes before the name, so a name keeps well below that.
const MaxNameLen = 512

// CheckName refuses a name that could leave the storage's root or mean
// different things to different storages: it must be a slash-separated
// relative path (fs.ValidPath: no leading or trailing slash, no empty, "."
// or ".." element), valid UTF-8, without backslashes (a separator on
// Windows and to some S3 front ends) and without control characters (they
// end up in logs, headers and URLs). The error wraps ErrInvalidName.
func CheckName(name string) error {
	var why string
	switch {
	case name == "":
		why = "empty"
	case len(name) > MaxNameLen:
		why = fmt.Sprintf("longer than %d bytes", MaxNameLen)
	case !utf8.ValidString(name):
		why = "not UTF-8"
	case strings.ContainsRune(name, '\\'):
		why = "contains a backslash"
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		why = "contains a control character"
	case name == "." || !fs.ValidPath(name):
		why = `not a relative slash-separated path without "." and ".." elements`
	default:
		return nil
	}
	return fmt.Errorf("%w %q: %s", ErrInvalidName, name, why)
}
