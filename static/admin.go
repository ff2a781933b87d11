package static

import _ "embed"

//go:embed admin/login.html
var adminLogin string

// AdminLogin is the admin login page, an html/template with .Next (the
// path to return to) and .Message (why the login is asked for again).
func AdminLogin() string { return adminLogin }
