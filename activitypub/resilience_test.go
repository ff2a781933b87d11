package activitypub

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/starling-live/starling/activitypub/aptest"
	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/data"
	"github.com/starling-live/starling/core/jobs"
	"github.com/starling-live/starling/core/testrig"
)

// TestDeliveryRetriedUntilTaken: an inbox that answers 500 gets the post
// again, and once it took it, never again.
func TestDeliveryRetriedUntilTaken(t *testing.T) {
	r := newRig(t)
	remote := aptest.New(t)
	ivy := remote.NewActor("ivy")
	r.follow(t, remote, ivy)
	remote.Respond(2, http.StatusInternalServerError)
	if _, err := r.fed.Send(context.Background(), "are you there?"); err != nil {
		t.Fatal(err)
	}
	testrig.Eventually(t, wait, "the post delivered", func() (bool, string) {
		posts, _ := r.fed.Posts(context.Background(), 1, 0)
		return len(posts) == 1 && posts[0].Delivered == 1, fmt.Sprintf("%+v", posts)
	})
	// Let the queue run a while longer: nothing more may arrive.
	r.fed.Send(context.Background(), "and again")
	remote.WaitDelivery(t, func(d aptest.Delivery) bool {
		return d.Type == "Create" && d.Status == 202 && strings.Contains(string(d.Body), "and again")
	}, wait)
	var took, refused int
	for _, d := range remote.Deliveries() {
		if d.Type == "Create" && strings.Contains(string(d.Body), "are you there?") {
			switch d.Status {
			case 202:
				took++
			case 500:
				refused++
			}
		}
	}
	if took != 1 || refused != 2 {
		t.Errorf("the post was taken %d times after %d refusals, want once after 2", took, refused)
	}
}

// TestGoneInboxDropsItsFollowers: an inbox answering 410 is gone for good:
// its followers are dropped, and the delivery is not retried.
func TestGoneInboxDropsItsFollowers(t *testing.T) {
	r := newRig(t)
	remote := aptest.New(t)
	jo := remote.NewActor("jo")
	r.follow(t, remote, jo)
	remote.Gone()
	r.fed.Send(context.Background(), "hello?")
	testrig.Eventually(t, wait, "the follower dropped", func() (bool, string) {
		return r.count("followers") == 0, r.logs.String()
	})
	posts, _ := r.fed.Posts(context.Background(), 1, 0)
	if len(posts) != 1 || posts[0].Failed != 1 {
		t.Errorf("posts %+v, want one failed delivery", posts)
	}
}

// The kill -9 test runs a child that queues a post and retries it against
// an inbox that refuses it, until the parent kills it.
const childEnv = "STARLING_AP_CHILD"

func runChild(path string) int {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	store, err := data.Open(ctx, path)
	if err != nil {
		return 2
	}
	settings, err := core.LoadSettings(ctx, store)
	if err != nil {
		return 3
	}
	secrets, _, err := core.LoadSecrets(ctx, store, "", "")
	if err != nil {
		return 4
	}
	q := jobs.New(jobs.Deps{Logger: log, Store: store, Config: jobs.Config{Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}})
	f := New(Deps{Logger: log, Store: store, Settings: settings, Keys: secrets, Queue: q, Config: Config{AllowedNetworks: loopback}})
	if err := q.Start(ctx); err != nil {
		return 5
	}
	if _, err := f.Send(ctx, "survives kill -9"); err != nil {
		return 6
	}
	fmt.Println("sent")
	select {} // until kill -9
}

// TestQueuedDeliverySurvivesKill9: a post whose delivery was still being
// retried when the server was killed is delivered, once, after the
// restart.
func TestQueuedDeliverySurvivesKill9(t *testing.T) {
	r := newRig(t)
	remote := aptest.New(t)
	kim := remote.NewActor("kim")
	r.follow(t, remote, kim)
	// The rig's queue stops once the Accept is recorded as done; the
	// child is the server now (our actor is still served, from the same
	// database, for the remote's key fetch).
	r.idle()
	r.queue.Close()
	remote.Respond(1_000_000, http.StatusServiceUnavailable)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+r.path)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "sent\n" {
		t.Fatalf("the child said %q", line)
	}
	remote.WaitDelivery(t, func(d aptest.Delivery) bool { return d.Type == "Create" && d.Status == http.StatusServiceUnavailable }, wait)
	cmd.Process.Kill()
	cmd.Wait()

	remote.Respond(0, 0)
	r.start()
	took := remote.WaitDelivery(t, func(d aptest.Delivery) bool { return d.Type == "Create" && d.Status == http.StatusAccepted }, wait)
	if !strings.Contains(string(took.Body), "survives kill -9") {
		t.Fatalf("delivered %s", took.Body)
	}
	testrig.Eventually(t, wait, "the post counted as delivered", func() (bool, string) {
		posts, _ := r.fed.Posts(context.Background(), 1, 0)
		return len(posts) == 1 && posts[0].Delivered == 1, fmt.Sprintf("%+v", posts)
	})
	var n int
	for _, d := range remote.Deliveries() {
		if d.Type == "Create" && d.Status == http.StatusAccepted {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the post was taken %d times, want once", n)
	}
}
