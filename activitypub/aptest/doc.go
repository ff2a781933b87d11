// Package aptest plays a remote fediverse server inside a test: an
// httptest server on 127.0.0.1 whose actors follow, like and boost our
// stream's actor, and which checks the HTTP signature of everything our
// server delivers to its inboxes.
//
// It signs and verifies on its own, with the standard library only and
// written from the signature draft as Mastodon implements it
// (draft-cavage-http-signatures-12, https://datatracker.ietf.org/doc/html/draft-cavage-http-signatures-12),
// so that a mistake in our server's signing code is not repeated here and
// hidden by it.
//
// A test is a few lines:
//
//	remote := aptest.New(t)
//	alice := remote.NewActor("alice")
//	resp, err := alice.Post(ctx, streamInbox, alice.Follow(streamActor))
//	// ...
//	accept := remote.WaitDelivery(t, aptest.OfType("Accept"), 10*time.Second)
//
// Everything is plain HTTP on loopback. Each Server is closed by
// t.Cleanup.
package aptest
