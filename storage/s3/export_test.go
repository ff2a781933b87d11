package s3

import "time"

// SetTimeouts sets every per-request deadline, for tests of stalls that
// should not take the 20 s a real deadline takes.
func SetTimeouts(s *Storage, d time.Duration) {
	s.putTimeout, s.getTimeout, s.listTimeout, s.deleteTimeout, s.checkTimeout = d, d, d, d, d
}

// SetBatchSize sets how many keys go into one DeleteObjects request.
func SetBatchSize(s *Storage, n int) { s.batchSize = n }
