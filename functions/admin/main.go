// Command admin is the SCF function serving the operator's routes, POST /admin/pause,
// /admin/resume, /admin/capacity, /admin/kick, /admin/notice, /admin/sessions and
// /admin/records (one function for all: it routes by path); all behaviour lives in shared/app.
package main

import (
	"github.com/carqueue/carqueue/shared/app"
	"github.com/tencentyun/scf-go-lib/cloudfunction"
)

func main() { cloudfunction.Start(app.HTTP("")) }
