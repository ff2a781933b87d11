// Package static embeds the built viewer page (static/web, built from
// build/web with npm) so that the binary serves it without Node.
package static

import (
	"embed"
	"io/fs"
)

//go:embed all:web
var files embed.FS

// Web returns the viewer page's files, index.html at the root.
func Web() fs.FS {
	sub, err := fs.Sub(files, "web")
	if err != nil {
		panic(err) // "web" is a literal directory of the embed above
	}
	return sub
}
