package core

import (
	"context"
	"strings"
	"testing"
)

// TestAdminPasswordVersion: the version admin sessions are bound to stays
// while the password does, changes when config/adminpass or
// --admin-password at a start sets it (to the same password too), and
// holds nothing of the password or its hash.
func TestAdminPasswordVersion(t *testing.T) {
	ctx := context.Background()
	store, _ := openStore(t)
	s, _, err := LoadSecrets(ctx, store, "", "first-admin-password")
	if err != nil {
		t.Fatal(err)
	}
	v1 := s.AdminPasswordVersion()
	if v1 == "" || v1 != s.AdminPasswordVersion() {
		t.Fatalf("the version changes by itself: %q, %q", v1, s.AdminPasswordVersion())
	}
	if strings.Contains(v1, "first-admin-password") || strings.Contains(string(s.adminHash), v1) {
		t.Errorf("the version %q reveals the password or its hash", v1)
	}
	reloaded, _, err := LoadSecrets(ctx, store, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if reloaded.AdminPasswordVersion() != v1 {
		t.Error("a restart without --admin-password changes the version")
	}
	if err := s.SetAdminPassword(ctx, "second-admin-password"); err != nil {
		t.Fatal(err)
	}
	v2 := s.AdminPasswordVersion()
	if v2 == v1 {
		t.Error("config/adminpass leaves the version")
	}
	flagged, _, err := LoadSecrets(ctx, store, "", "second-admin-password")
	if err != nil {
		t.Fatal(err)
	}
	if flagged.AdminPasswordVersion() == v2 {
		t.Error("--admin-password at a start leaves the version")
	}
}
