package static

import (
	"embed"
	"io/fs"
)

//go:embed admin/login.html
var adminLogin string

// AdminLogin is the admin login page, an html/template with .Next (the
// path to return to) and .Message (why the login is asked for again).
func AdminLogin() string { return adminLogin }

//go:embed all:panel
var panel embed.FS

// Panel returns the admin panel's files (static/panel, built from
// build/web/src/admin with npm), index.html at the root.
func Panel() fs.FS { return sub(panel, "panel") }
