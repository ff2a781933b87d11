package webhooks

import "errors"

// ErrInvalid wraps what is wrong with a webhook an admin tried to create;
// the message names the field and is safe to show.
var ErrInvalid = errors.New("invalid webhook")

// ErrUnknownWebhook is returned for an id no webhook has.
var ErrUnknownWebhook = errors.New("no webhook has that id")
