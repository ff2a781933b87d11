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
func Web() fs.FS { return sub(files, "web") }

// sub is dir of an embed; dir is a literal directory of that embed, so
// fs.Sub cannot fail.
func sub(fsys embed.FS, dir string) fs.FS {
	s, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err)
	}
	return s
}

// Logo is the built-in logo, served while the admin has uploaded none.
func Logo() []byte {
	b, err := files.ReadFile("web/favicon.svg")
	if err != nil {
		panic(err) // a literal file of the embed above
	}
	return b
}
