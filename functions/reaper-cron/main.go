// Command reaper-cron is the timer-triggered SCF function that runs the reaper (shared/reaper via
// shared/app): reap quiet users, destroy sessions of leavers, admit from the head.
package main

import (
	"github.com/carqueue/carqueue/shared/app"
	"github.com/tencentyun/scf-go-lib/cloudfunction"
)

func main() { cloudfunction.Start(app.Reaper()) }
