// Command poll is the SCF function serving POST /poll; all behaviour lives in shared/app.
package main

import (
	"github.com/carqueue/carqueue/shared/app"
	"github.com/tencentyun/scf-go-lib/cloudfunction"
)

func main() { cloudfunction.Start(app.HTTP("poll")) }
