package car

import "time"

// SetBackoff replaces the retry backoff so tests need not wait.
func SetBackoff(c *Client, f func(n int) time.Duration) { c.backoff = f }
