using System.Text.Json.Nodes;
using ModelCar.TestSupport;

namespace ModelCar.MrRegister.Tests;

/// <summary>`mr-register register` end to end: the published binary against the strict fake registry.</summary>
public sealed class RegisterToolTests
{
    [Fact]
    public async Task Register_creates_model_version_and_artifact_with_only_defined_fields()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        using var results = new TempDir("mr-results");
        var r = await Tool.RegisterAsync(fake, [.. Tool.Granite,
            "--model-format-name", "vLLM", "--model-format-version", "1", "--storage-key", "quay-pull", "--storage-path", "org/granite",
            "--author", "pipeline", "--owner", "team-a", "--description", "Granite 3.1 8B", "--version-description", "W4A16 Jan 2025",
            "--property", "source=hf://ibm-granite/granite-3.1-8b", "--property", "params:int=8", "--property", "score:double=1.5",
            "--property", "quantized:bool=true", "--results-dir", results.Path]);

        Assert.True(r.ExitCode == 0, r.ToString());
        var ids = Tool.Ids(r);
        var model = Assert.Single(fake.Models);
        var version = Assert.Single(fake.Versions);
        var artifact = Assert.Single(fake.Artifacts);
        Assert.Equal((string)model["id"]!, ids["registered-model-id"]);
        Assert.Equal((string)version["id"]!, ids["model-version-id"]);
        Assert.Equal((string)artifact["id"]!, ids["model-artifact-id"]);
        Assert.Equal(3, ids.Count);

        Assert.Equal("granite-3.1-8b", (string)model["name"]!);
        Assert.Equal("team-a", (string)model["owner"]!);
        Assert.Equal("Granite 3.1 8B", (string)model["description"]!);
        Assert.Equal((string)model["id"]!, (string)version["registeredModelId"]!);
        Assert.Equal("pipeline", (string)version["author"]!);
        Assert.Equal("W4A16 Jan 2025", (string)version["description"]!);
        Assert.Equal("oci://quay.io/org/granite:w4a16-2501", (string)artifact["uri"]!);
        Assert.Equal("model-artifact", (string)artifact["artifactType"]!);
        Assert.Equal("vLLM", (string)artifact["modelFormatName"]!);
        Assert.Equal("quay-pull", (string)artifact["storageKey"]!);
        Assert.Equal("org/granite", (string)artifact["storagePath"]!);
        var props = artifact["customProperties"]!.AsObject();
        Assert.Equal("""{"metadataType":"MetadataStringValue","string_value":"hf://ibm-granite/granite-3.1-8b"}""", props["source"]!.ToJsonString());
        Assert.Equal("""{"metadataType":"MetadataIntValue","int_value":"8"}""", props["params"]!.ToJsonString());
        Assert.Equal("""{"metadataType":"MetadataDoubleValue","double_value":1.5}""", props["score"]!.ToJsonString());
        Assert.Equal("""{"metadataType":"MetadataBoolValue","bool_value":true}""", props["quantized"]!.ToJsonString());

        // exactly three creates, no nulls, and the version body only carries its own fields
        var writes = fake.Writes;
        Assert.Equal(["POST", "POST", "POST"], writes.Select(w => w.Method));
        Assert.All(writes, w => Assert.DoesNotContain("null", w.Body));
        Assert.Equal(["author", "description", "name", "registeredModelId"], JsonNode.Parse(writes[1].Body)!.AsObject().Select(p => p.Key).Order());

        Assert.Equal(ids["registered-model-id"], File.ReadAllText(Path.Combine(results.Path, "registered-model-id")));
        Assert.Equal(ids["model-version-id"], File.ReadAllText(Path.Combine(results.Path, "model-version-id")));
        Assert.Equal(ids["model-artifact-id"], File.ReadAllText(Path.Combine(results.Path, "model-artifact-id")));
        Assert.Equal("oci://quay.io/org/granite:w4a16-2501", File.ReadAllText(Path.Combine(results.Path, "model-uri")));
    }

    [Fact]
    public async Task Minimal_register_sends_no_optional_fields()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        // empty values (Tekton params defaulting to "") count as not given
        var r = await Tool.RegisterAsync(fake, [.. Tool.Granite, "--version-description", "", "--author", "", "--storage-key", ""]);
        Assert.True(r.ExitCode == 0, r.ToString());
        var bodies = fake.Writes.Select(w => JsonNode.Parse(w.Body)!.AsObject().Select(p => p.Key).Order().ToArray()).ToList();
        Assert.Equal(["name"], bodies[0]);
        Assert.Equal(["name", "registeredModelId"], bodies[1]);
        Assert.Equal(["artifactType", "name", "uri"], bodies[2]);
    }

    [Fact]
    public async Task Rerun_creates_nothing_and_prints_the_same_ids()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        string[] args = [.. Tool.Granite, "--model-format-name", "vLLM", "--property", "params:int=8"];
        var first = await Tool.RegisterAsync(fake, args);
        Assert.True(first.ExitCode == 0, first.ToString());
        fake.ClearLog();

        var second = await Tool.RegisterAsync(fake, args);

        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Equal(first.StdOut, second.StdOut);
        Assert.Empty(fake.Writes);
        Assert.NotEmpty(fake.Log);
        Assert.Single(fake.Models);
        Assert.Single(fake.Versions);
        Assert.Single(fake.Artifacts);
    }

    [Fact]
    public async Task Different_uri_is_an_error_unless_update_which_patches_in_place()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        var first = await Tool.RegisterAsync(fake, Tool.Granite);
        Assert.True(first.ExitCode == 0, first.ToString());
        var artifactId = (string)Assert.Single(fake.Artifacts)["id"]!;
        // someone else added a property: our update must keep it (PATCH replaces the whole map)
        using (var http = new HttpClient())
        {
            var patch = new StringContent("""{"artifactType":"model-artifact","customProperties":{"reviewed":{"metadataType":"MetadataBoolValue","bool_value":true}}}""", System.Text.Encoding.UTF8, "application/json");
            var resp = await http.PatchAsync(new Uri(fake.Url, $"{FakeModelRegistry.Prefix}/model_artifacts/{artifactId}"), patch);
            Assert.Equal(200, (int)resp.StatusCode);
        }
        fake.ClearLog();
        string[] changed = ["--model-name", Tool.Granite[1], "--version-name", Tool.Granite[3], "--uri", "oci://quay.io/org/granite:w4a16-2502", "--property", "params:int=8"];

        var refused = await Tool.RegisterAsync(fake, changed);

        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("already has model artifact", refused.StdErr);
        Assert.Contains("oci://quay.io/org/granite:w4a16-2501", refused.StdErr);
        Assert.Contains("--update", refused.StdErr);
        Assert.Empty(fake.Writes);

        var updated = await Tool.RegisterAsync(fake, [.. changed, "--update"]);

        Assert.True(updated.ExitCode == 0, updated.ToString());
        Assert.Equal(Tool.Ids(first), Tool.Ids(updated));
        var patchReq = Assert.Single(fake.Writes);
        Assert.Equal("PATCH", patchReq.Method);
        Assert.EndsWith($"/model_artifacts/{artifactId}", patchReq.Path);
        var body = JsonNode.Parse(patchReq.Body)!.AsObject();
        Assert.DoesNotContain("name", body.Select(p => p.Key));
        Assert.DoesNotContain("id", body.Select(p => p.Key));
        var artifact = Assert.Single(fake.Artifacts);
        Assert.Equal("oci://quay.io/org/granite:w4a16-2502", (string)artifact["uri"]!);
        var props = artifact["customProperties"]!.AsObject();
        Assert.True((bool)props["reviewed"]!["bool_value"]!);
        Assert.Equal("8", (string)props["params"]!["int_value"]!);

        fake.ClearLog();
        var again = await Tool.RegisterAsync(fake, [.. changed, "--update"]);
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Empty(fake.Writes);
    }

    [Fact]
    public async Task Same_uri_with_other_fields_is_left_alone_unless_update()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        Assert.Equal(0, (await Tool.RegisterAsync(fake, [.. Tool.Granite, "--property", "params:int=8"])).ExitCode);
        fake.ClearLog();

        var kept = await Tool.RegisterAsync(fake, [.. Tool.Granite, "--property", "params:int=9", "--model-format-name", "vLLM"]);
        Assert.True(kept.ExitCode == 0, kept.ToString());
        Assert.Contains("pass --update", kept.StdErr);
        Assert.Empty(fake.Writes);

        var updated = await Tool.RegisterAsync(fake, [.. Tool.Granite, "--property", "params:int=9", "--model-format-name", "vLLM", "--update"]);
        Assert.True(updated.ExitCode == 0, updated.ToString());
        var patch = Assert.Single(fake.Writes);
        Assert.Equal("""{"artifactType":"model-artifact","modelFormatName":"vLLM","customProperties":{"params":{"metadataType":"MetadataIntValue","int_value":"9"}}}""", patch.Body);
        Assert.Equal("9", (string)Assert.Single(fake.Artifacts)["customProperties"]!["params"]!["int_value"]!);
    }

    [Fact]
    public async Task Failure_between_version_and_artifact_then_rerun_completes()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        int failures = 0;
        fake.Fault = req => req.Method == "POST" && req.Path.EndsWith("/artifacts") && Interlocked.Increment(ref failures) == 1
            ? new FakeReply(400, """{"code":"Bad Request","message":"injected: storage backend refused"}""")
            : null;

        var crashed = await Tool.RegisterAsync(fake, Tool.Granite);

        Assert.Equal(1, crashed.ExitCode);
        Assert.Contains("400", crashed.StdErr);
        Assert.Contains("injected: storage backend refused", crashed.StdErr);
        Assert.Single(fake.Models);
        Assert.Single(fake.Versions);
        Assert.Empty(fake.Artifacts);

        var rerun = await Tool.RegisterAsync(fake, Tool.Granite);

        Assert.True(rerun.ExitCode == 0, rerun.ToString());
        Assert.Single(fake.Models);
        Assert.Single(fake.Versions);
        var artifact = Assert.Single(fake.Artifacts);
        Assert.Equal((string)artifact["id"]!, Tool.Ids(rerun)["model-artifact-id"]);
    }

    [Fact]
    public async Task Process_killed_after_creating_the_version_then_rerun_completes()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        fake.Fault = req =>
        {
            if (req.Method == "GET" && req.Path.EndsWith("/artifacts") && arrived.TrySetResult())
            {
                release.Task.Wait(TimeSpan.FromSeconds(20)); // hold the first artifact lookup while the process is killed
            }
            return null;
        };
        using (var process = ToolRunner.Start(Tool.Name, Tool.Args(fake, "register", Tool.Granite), Tool.Env()))
        {
            await arrived.Task.WaitAsync(TimeSpan.FromSeconds(30));
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
        release.TrySetResult();
        Assert.Single(fake.Models);
        Assert.Single(fake.Versions);
        Assert.Empty(fake.Artifacts);

        var rerun = await Tool.RegisterAsync(fake, Tool.Granite);

        Assert.True(rerun.ExitCode == 0, rerun.ToString());
        Assert.Single(fake.Models);
        Assert.Single(fake.Versions);
        Assert.Single(fake.Artifacts);
        Assert.Equal((string)fake.Versions[0]["id"]!, Tool.Ids(rerun)["model-version-id"]);
    }

    [Fact]
    public async Task Version_left_behind_by_another_client_is_reused()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        var modelId = fake.AddModel(Tool.Granite[1]);
        var versionId = fake.AddVersion(modelId, Tool.Granite[3]);

        var r = await Tool.RegisterAsync(fake, Tool.Granite);

        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(modelId, Tool.Ids(r)["registered-model-id"]);
        Assert.Equal(versionId, Tool.Ids(r)["model-version-id"]);
        var create = Assert.Single(fake.Creates);
        Assert.EndsWith($"/model_versions/{versionId}/artifacts", create.Path);
    }

    [Theory]
    [InlineData(false, "model")]
    [InlineData(true, "model")]
    [InlineData(false, "version")]
    [InlineData(true, "version")]
    [InlineData(false, "artifact")]
    [InlineData(true, "artifact")]
    public async Task Two_concurrent_runs_make_one_model_one_version_one_artifact(bool legacyDuplicates, string raceOn)
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        fake.LegacyDuplicates = legacyDuplicates;
        string racedPath = "/registered_models", racedRead = "/registered_model";
        if (raceOn != "model")
        {
            var modelId = fake.AddModel(Tool.Granite[1]);
            (racedPath, racedRead) = ("/model_versions", "/model_version");
            if (raceOn == "artifact")
            {
                var versionId = fake.AddVersion(modelId, Tool.Granite[3]);
                racedPath = racedRead = $"/model_versions/{versionId}/artifacts";
            }
        }
        // both runs' lookups are answered only once both have asked: both see "not found" and both create
        fake.Gate(r => r.Method == "GET" && r.Path == FakeModelRegistry.Prefix + racedRead);

        // two processes of the published binary at once
        var runs = await Task.WhenAll(Tool.RegisterAsync(fake, Tool.Granite), Tool.RegisterAsync(fake, Tool.Granite));

        Assert.All(runs, r => Assert.True(r.ExitCode == 0, r.ToString()));
        Assert.Equal(runs[0].StdOut, runs[1].StdOut);
        Assert.Single(fake.Models);
        Assert.Single(fake.Versions);
        Assert.Single(fake.Artifacts);
        int duplicateStatus = legacyDuplicates ? 500 : 409;
        Assert.Contains(fake.Log, r => r.Method == "POST" && r.Path == FakeModelRegistry.Prefix + racedPath && r.Status == duplicateStatus);
        Assert.DoesNotContain(fake.Log, r => r.Status == duplicateStatus && r.Method == "GET");
    }

    [Fact]
    public async Task Like_lookalike_model_and_version_are_never_adopted()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        var lookalikeModel = fake.AddModel("granite-3b");          // matches "granite_3b" under LIKE
        fake.AddVersion(lookalikeModel, "v1x0");
        string[] args = ["--model-name", "granite_3b", "--version-name", "v1_0", "--uri", "oci://q/granite:1"];

        var r = await Tool.RegisterAsync(fake, args);

        Assert.True(r.ExitCode == 0, r.ToString());
        var ids = Tool.Ids(r);
        Assert.NotEqual(lookalikeModel, ids["registered-model-id"]);
        Assert.Equal(["granite-3b", "granite_3b"], fake.Models.Select(m => (string)m["name"]!).Order());
        var ours = fake.Versions.Single(v => (string)v["registeredModelId"]! == ids["registered-model-id"]);
        Assert.Equal("v1_0", (string)ours["name"]!);

        // now the server's LIKE finds several (404): the re-run must still find exactly ours and create nothing
        var mine = ids["registered-model-id"];
        fake.AddVersion(mine, "v1-0");                              // a look-alike version under our model too
        fake.ClearLog();
        var rerun = await Tool.RegisterAsync(fake, args);

        Assert.True(rerun.ExitCode == 0, rerun.ToString());
        Assert.Equal(ids, Tool.Ids(rerun));
        Assert.Empty(fake.Creates);
        Assert.Equal(2, fake.Models.Count);
        Assert.Single(fake.Artifacts);
    }

    [Fact]
    public async Task Case_insensitive_like_match_is_not_adopted()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        var other = fake.AddModel("Granite");
        var r = await Tool.RegisterAsync(fake, "--model-name", "granite", "--version-name", "v1", "--uri", "oci://q/g:1");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.NotEqual(other, Tool.Ids(r)["registered-model-id"]);
        Assert.Equal(2, fake.Models.Count);
    }

    [Fact]
    public async Task Burst_of_503_is_retried()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        fake.Fail503(3);

        var r = await Tool.RegisterAsync(fake, Tool.Granite);

        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(3, fake.Log.Count(l => l.Status == 503));
        Assert.Contains("retry", r.StdErr);
        Assert.Single(fake.Artifacts);
    }

    [Fact]
    public async Task A_retry_after_beyond_max_retry_wait_fails_at_once_naming_the_option_and_a_higher_cap_is_honoured()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        fake.Fault = req => new FakeReply(429, """{"code":"busy","message":"slow down"}""") { RetryAfter = 100_000 };
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var r = await Tool.RegisterAsync(fake, Tool.Granite);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"took {clock.Elapsed}");
        Assert.Equal(1, r.ExitCode);
        Assert.Single(fake.Log); // not retried
        Assert.EndsWith("the server asks to wait 100000 s before retrying, more than the 60 s limit (raise --max-retry-wait to wait that long)",
            r.StdErr.Trim().Split('\n')[^1]);

        // the option exists for both subcommands and sets the cap; a wait within it is waited for
        fake.ClearLog();
        var higher = await Tool.RunAsync(fake, "lookup", "--model-name", "m", "--version-name", "v", "--max-retry-wait", "5");
        Assert.Equal(1, higher.ExitCode);
        Assert.Contains("more than the 5 s limit", higher.StdErr);
        int calls = 0;
        fake.Fault = req => Interlocked.Increment(ref calls) == 1 ? new FakeReply(429, """{"code":"busy","message":"slow down"}""") { RetryAfter = 1 } : null;
        var ok = await Tool.RegisterAsync(fake, [.. Tool.Granite, "--max-retry-wait", "2"]);
        Assert.True(ok.ExitCode == 0, ok.ToString());
        Assert.Contains("retry 1/5 in 1.0 s after 429", ok.StdErr);
        Assert.Single(fake.Artifacts);
    }

    [Fact]
    public async Task Version_pattern_mismatch_is_exit_2_before_any_request()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        var r = await Tool.RegisterAsync(fake, "--model-name", "m", "--version-name", "latest", "--uri", "oci://q/m:1",
            "--version-pattern", @"(quantized-w4a16|full-fp16)-\d{4}");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("does not match --version-pattern", r.StdErr);
        Assert.Empty(fake.Log);

        var ok = await Tool.RegisterAsync(fake, [.. Tool.Granite, "--version-pattern", @"(quantized-w4a16|full-fp16)-\d{4}"]);
        Assert.True(ok.ExitCode == 0, ok.ToString());
    }

    [Theory]
    [InlineData("novalue", "is not KEY=VALUE")]
    [InlineData("n:int=five", "is not an integer")]
    [InlineData("n:int=2147483647", "at most 9 digits")]
    [InlineData("x:double=NaN", "not a finite number")]
    [InlineData("b:bool=yes", "not true or false")]
    [InlineData("=v", "is not KEY=VALUE")]
    public async Task Bad_property_is_exit_2(string property, string message)
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        var r = await Tool.RegisterAsync(fake, [.. Tool.Granite, "--property", property]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(message, r.StdErr);
        Assert.Empty(fake.Log);
    }

    [Fact]
    public async Task Bad_usage_is_exit_2()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        var missing = await Tool.RegisterAsync(fake, "--model-name", "m", "--version-name", "v");
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("--uri", missing.StdErr);

        var plainHttp = await ToolRunner.RunAsync(Tool.Name, ["register", "--server", fake.Url.ToString(), .. Tool.Granite], Tool.Env());
        Assert.Equal(2, plainHttp.ExitCode);
        Assert.Contains("--tls-verify=false", plainHttp.StdErr);

        var badUrl = await ToolRunner.RunAsync(Tool.Name, ["register", "--server", "ftp://x", .. Tool.Granite], Tool.Env());
        Assert.Equal(2, badUrl.ExitCode);
        Assert.Contains("is not an http(s) URL", badUrl.StdErr);
        Assert.Empty(fake.Log);
    }

    [Fact]
    public async Task Dry_run_prints_the_writes_and_sends_none()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        var r = await Tool.RegisterAsync(fake, [.. Tool.Granite, "--property", "params:int=8", "--dry-run"]);

        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Empty(fake.Writes);
        Assert.Empty(fake.Models);
        var lines = r.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        Assert.Equal($"POST {FakeModelRegistry.Prefix}/registered_models {{\"name\":\"granite-3.1-8b\"}}", lines[0]);
        Assert.Equal($"POST {FakeModelRegistry.Prefix}/model_versions {{\"name\":\"quantized-w4a16-2501\",\"registeredModelId\":\"NEW\"}}", lines[1]);
        Assert.StartsWith($"POST {FakeModelRegistry.Prefix}/model_versions/NEW/artifacts {{\"artifactType\":\"model-artifact\"", lines[2]);
        Assert.Contains("\"int_value\":\"8\"", lines[2]);

        // existing registration with a new uri and --update: exactly one PATCH is planned
        Assert.Equal(0, (await Tool.RegisterAsync(fake, Tool.Granite)).ExitCode);
        var id = (string)fake.Artifacts[0]["id"]!;
        fake.ClearLog();
        var planned = await Tool.RegisterAsync(fake, "--model-name", Tool.Granite[1], "--version-name", Tool.Granite[3], "--uri", "oci://q/new:1", "--update", "--dry-run");
        Assert.True(planned.ExitCode == 0, planned.ToString());
        Assert.Equal($"PATCH {FakeModelRegistry.Prefix}/model_artifacts/{id} {{\"artifactType\":\"model-artifact\",\"uri\":\"oci://q/new:1\"}}", planned.StdOut.Trim());
        Assert.Empty(fake.Writes);
        Assert.Equal(Tool.Granite[5], (string)fake.Artifacts[0]["uri"]!);
    }

    [Fact]
    public async Task Dry_run_against_an_unreachable_server_plans_everything()
    {
        int port;
        using (var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0))
        {
            l.Start();
            port = ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
        } // closed again: connections are refused

        var r = await ToolRunner.RunAsync(Tool.Name, ["register", "--server", $"http://127.0.0.1:{port}", "--tls-verify=false", .. Tool.Granite, "--dry-run"], Tool.Env());

        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("cannot reach the server", r.StdErr);
        var lines = r.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["POST", "POST", "POST"], lines.Select(l => l.Split(' ')[0]));

        var real = await ToolRunner.RunAsync(Tool.Name, ["register", "--server", $"http://127.0.0.1:{port}", "--tls-verify=false", .. Tool.Granite], Tool.Env());
        Assert.Equal(1, real.ExitCode);
        Assert.Contains("Connection refused", real.StdErr);
    }

    [Fact]
    public async Task Global_options_work_on_the_subcommand()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        var r = await Tool.RegisterAsync(fake, [.. Tool.Granite, "--verbose", "--log-format", "json"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("\"LogLevel\":\"Debug\"", r.StdErr);
        Assert.Contains("registered_model?name=granite-3.1-8b", r.StdErr);
    }
}

/// <summary>
/// Issue 11: what the pipeline registers — the HF commit and the image digest as artifact properties,
/// the uri pinned by digest — over TLS with the CA file, as an arbitrary UID without HOME.
/// </summary>
public sealed class PipelinePropertiesTests
{
    [Fact]
    public async Task Hf_commit_and_image_digest_are_string_properties_and_a_new_digest_needs_update()
    {
        var (cert, caPem) = TestCerts.Create();
        using var _ = cert;
        await using var fake = await FakeModelRegistry.StartAsync(cert);
        using var dir = new TempDir("mr-props");
        var caFile = dir.WriteFile("service-ca.crt", caPem);
        ArbitraryUid.AllowRead(caFile);
        using var sandbox = new ArbitraryUid();
        const string commit = "0123456789abcdef0123456789abcdef01234567";
        var digest1 = "sha256:" + new string('a', 64);
        var digest2 = "sha256:" + new string('b', 64);
        List<string> Args(string digest) => Tool.Args(fake, "register", "--model-name", "granite-3.1-8b", "--version-name", "w4a16-2501",
            "--uri", $"oci://quay.io/org/granite@{digest}", "--property", $"hf.commit={commit}", "--property", $"oci.image.digest={digest}",
            "--property", "hf.repo=ibm-granite/granite-3.1-8b", "--ca-file", caFile);

        var r = await sandbox.RunAsync(Tool.Name, Args(digest1), Tool.Env());
        Assert.True(r.ExitCode == 0, r.ToString());
        var artifact = Assert.Single(fake.Artifacts);
        Assert.Equal($"oci://quay.io/org/granite@{digest1}", (string)artifact["uri"]!);
        var props = artifact["customProperties"]!.AsObject();
        Assert.Equal($$"""{"metadataType":"MetadataStringValue","string_value":"{{commit}}"}""", props["hf.commit"]!.ToJsonString());
        Assert.Equal($$"""{"metadataType":"MetadataStringValue","string_value":"{{digest1}}"}""", props["oci.image.digest"]!.ToJsonString());

        // a re-run after a rebuild: the uri (pinned) and the digest property change together; --update applies both
        var refused = await sandbox.RunAsync(Tool.Name, Args(digest2), Tool.Env());
        Assert.Equal(1, refused.ExitCode);
        var updated = await sandbox.RunAsync(Tool.Name, [.. Args(digest2), "--update"], Tool.Env());
        Assert.True(updated.ExitCode == 0, updated.ToString());
        artifact = Assert.Single(fake.Artifacts);
        Assert.Equal($"oci://quay.io/org/granite@{digest2}", (string)artifact["uri"]!);
        Assert.Equal(digest2, (string)artifact["customProperties"]!["oci.image.digest"]!["string_value"]!);
        Assert.Equal(commit, (string)artifact["customProperties"]!["hf.commit"]!["string_value"]!);
        sandbox.AssertNothingWritten();
    }
}
