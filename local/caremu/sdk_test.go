package caremu_test

import (
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/carqueue/carqueue/local/caremu"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
	tchttp "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/http"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
)

// A generic Tencent Cloud API v3 client (the SDK's common client, nothing of
// ours) pointed at the emulator gets CAR's answers and CAR's errors.
func TestGenericSDKClient(t *testing.T) {
	emu, err := caremu.New(caremu.Options{Slots: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	defer srv.Close()

	send := func(secretKey, action string, params map[string]any) (map[string]any, error) {
		cpf := profile.NewClientProfile()
		cpf.HttpProfile.Endpoint = strings.TrimPrefix(srv.URL, "http://")
		cpf.HttpProfile.Scheme = "HTTP"
		client := common.NewCommonClient(common.NewTokenCredential(caremu.LocalSecretID, secretKey, "tok"), "", cpf)
		req := tchttp.NewCommonRequest("car", "2022-01-10", action)
		if err := req.SetActionParameters(params); err != nil {
			t.Fatal(err)
		}
		resp := tchttp.NewCommonResponse()
		if err := client.Send(req, resp); err != nil {
			return nil, err
		}
		var out struct{ Response map[string]any }
		if err := json.Unmarshal(resp.GetBody(), &out); err != nil {
			t.Fatal(err)
		}
		return out.Response, nil
	}
	code := func(err error) string {
		if sdkErr, ok := err.(*tcerr.TencentCloudSDKError); ok {
			if sdkErr.RequestId == "" {
				t.Fatalf("error without RequestId: %v", err)
			}
			return sdkErr.Code
		}
		t.Fatalf("not an SDK error: %v", err)
		return ""
	}

	apply := map[string]any{"UserId": "u1", "UserIp": "1.2.3.4", "ProjectId": "p"}
	if _, err := send(caremu.LocalSecretKey, "ApplyConcurrent", apply); err != nil {
		t.Fatal(err)
	}
	out, err := send(caremu.LocalSecretKey, "CreateSession", map[string]any{"UserId": "u1", "UserIp": "1.2.3.4", "ClientSession": "cs"})
	if err != nil || out["ServerSession"] == "" || out["RequestId"] == "" {
		t.Fatalf("CreateSession: %v, %v", out, err)
	}
	out, err = send(caremu.LocalSecretKey, "DescribeConcurrentCount", map[string]any{"ProjectId": "p"})
	if err != nil || out["Total"] != 1.0 || out["Running"] != 1.0 {
		t.Fatalf("DescribeConcurrentCount: %v, %v", out, err)
	}
	apply["UserId"] = "u2"
	_, err = send(caremu.LocalSecretKey, "ApplyConcurrent", apply)
	if c := code(err); c != "ResourceNotFound.NoIdle" {
		t.Fatalf("code %s", c)
	}
	_, err = send("wrong", "DestroySession", map[string]any{"UserId": "u1"})
	if c := code(err); c != "AuthFailure.SignatureFailure" {
		t.Fatalf("code %s", c)
	}
	_, err = send(caremu.LocalSecretKey, "DescribeInstances", map[string]any{})
	if c := code(err); c != "InvalidAction" {
		t.Fatalf("code %s", c)
	}
}
