using System.Net;
using ModelCar.TestSupport;

namespace ModelCar.HfFetch.Tests;

/// <summary>
/// oci-pack --model hf://ORG/NAME@REV (issue 13): the PUBLISHED oci-pack streams the files of the in-process fake
/// Hub straight into a registry container, and the image is the one hf-fetch + oci-pack --model DIR give.
/// </summary>
public sealed class DirectPackTests : IAsyncLifetime
{
    private readonly TempDir _dir = new("oci-pack-direct");
    private readonly FakeHub _hub = new();
    private RegistryContainer _registry = null!;

    public async Task InitializeAsync() => _registry = await new RegistryContainer().StartAsync();

    public async Task DisposeAsync()
    {
        await _registry.DisposeAsync();
        await _hub.DisposeAsync();
        _dir.Dispose();
    }

    private int _homes;

    /// <summary>
    /// The tools' environment; a fresh HF_HOME per call unless <paramref name="hfHome"/> names one: without
    /// --state-dir the layer record of an hf:// model lives under HF_HOME, and a run that found the record of an
    /// earlier one would read nothing (the re-run tests share one on purpose).
    /// </summary>
    private Dictionary<string, string?> Env(string? token = null, string? hfHome = null) => new()
    {
        ["HF_TOKEN"] = token,
        ["HUGGING_FACE_HUB_TOKEN"] = null,
        ["HF_ENDPOINT"] = null,
        ["HF_HUB_OFFLINE"] = null,
        ["HF_HOME"] = hfHome ?? _dir.Combine($"hf-home-{Interlocked.Increment(ref _homes)}"),
        ["XDG_CACHE_HOME"] = null,
        ["SOURCE_DATE_EPOCH"] = null,
        ["REGISTRY_AUTH_FILE"] = null,
    };

    private FakeRepo Repo(string id = "org/model", bool gated = false)
    {
        var repo = _hub.AddRepo(id, gated: gated);
        repo.Add("config.json", "{\"a\":1}"u8.ToArray());
        repo.Add("sub/tokenizer.json", TempDir.RandomBytes(70_000, 2));
        repo.Add("model-00001-of-00002.safetensors", TempDir.RandomBytes(3 << 20, 3), lfs: true);
        repo.Add("model-00002-of-00002.safetensors", TempDir.RandomBytes((2 << 20) + 17, 4), lfs: true);
        return repo;
    }

    private Task<ToolResult> Direct(string model, string output, Dictionary<string, string?>? env = null, params string[] more) =>
        ToolRunner.RunAsync("oci-pack", [
            "--model", model, "--endpoint", _hub.Endpoint, "--base", "scratch", "--allow-no-shell", "--layer-threshold", "1M",
            "--output", $"docker://{_registry.HostPort}/{output}", "--tls-verify=false", .. more], env ?? Env(), TimeSpan.FromMinutes(3));

    private static string DigestOf(ToolResult r) => r.StdOut.Trim().Split('@')[^1];

    /// <summary>File requests (resolve, redirect target) the fake Hub saw.</summary>
    private int FileGets => _hub.Resolves.Count(r => r.Method == "GET");

    /// <summary>File body bytes the fake Hub sent.</summary>
    private long Served => _hub.BytesServed.Values.Sum();

    private async Task<HttpStatusCode> ManifestStatus(string repo, string tag)
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Head, new Uri(_registry.BaseUri, $"v2/{repo}/manifests/{tag}"));
        request.Headers.Accept.ParseAdd("application/vnd.oci.image.manifest.v1+json");
        using var response = await http.SendAsync(request);
        return response.StatusCode;
    }

    [Fact]
    public async Task Direct_from_the_hub_equals_hf_fetch_then_oci_pack_dir_and_skopeo_reads_it_back()
    {
        var repo = Repo();
        var dest = _dir.Combine("dest");
        var fetch = await ToolRunner.RunAsync("hf-fetch", [repo.Id, "--dest", dest, "--endpoint", _hub.Endpoint], Env(), TimeSpan.FromMinutes(2));
        Assert.True(fetch.ExitCode == 0, fetch.ToString());
        var twoStep = await ToolRunner.RunAsync("oci-pack", [
            "--model", dest, "--base", "scratch", "--allow-no-shell", "--layer-threshold", "1M",
            "--output", $"docker://{_registry.HostPort}/two/step:1", "--tls-verify=false"], Env(), TimeSpan.FromMinutes(3));
        Assert.True(twoStep.ExitCode == 0, twoStep.ToString());
        long servedBefore = Served;

        var direct = await Direct($"hf://{repo.Id}@{repo.Commit}", "direct/pack:1");
        Assert.True(direct.ExitCode == 0, direct.ToString());
        Assert.Equal(DigestOf(twoStep), DigestOf(direct));
        Assert.StartsWith("sha256:", DigestOf(direct));
        Assert.Equal(repo.Files.Sum(f => (long)f.Content.Length), Served - servedBefore); // each file read once, straight from the Hub
        Assert.Empty(_hub.Violations);
        // the log says, per layer and overall, how long the Hub side (reading the source) and the registry side took
        Assert.Matches(@"layer [^\n]+?: [0-9.]+ [KMG]?i?B to 1 output\(s\) in [0-9.]+ s, [0-9.]+ MB/s; reading the source [0-9.]+ s, waiting for the outputs [0-9.]+ s", direct.StdErr);
        Assert.Matches(@"model layers: [0-9.]+ [KMG]?i?B in [0-9.]+ s, [0-9.]+ MB/s; summed over the layers: reading the source [0-9.]+ s, waiting for the outputs [0-9.]+ s: the (source|outputs) set the pace", direct.StdErr);

        // a branch name resolves to the same commit: the same image
        var byBranch = await Direct($"hf://{repo.Id}", "direct/branch:1");
        Assert.True(byBranch.ExitCode == 0, byBranch.ToString());
        Assert.Equal(DigestOf(direct), DigestOf(byBranch));

        var back = _dir.Combine("back");
        var copy = await PeerTools.RunAsync("skopeo", ["copy", "--preserve-digests", "--src-tls-verify=false", $"docker://{_registry.HostPort}/direct/pack:1", $"oci:{back}:1"]);
        Assert.True(copy.ExitCode == 0, copy.ToString());
    }

    private async Task<System.Text.Json.JsonElement> RegistryJson(string repo, string kind, string reference)
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(_registry.BaseUri, $"v2/{repo}/{kind}/{reference}"));
        request.Headers.Accept.ParseAdd("application/vnd.oci.image.index.v1+json");
        request.Headers.Accept.ParseAdd("application/vnd.oci.image.manifest.v1+json");
        using var response = await http.SendAsync(request);
        Assert.True(response.IsSuccessStatusCode, $"{kind} {reference}: {response.StatusCode}");
        return System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsByteArrayAsync()).RootElement.Clone();
    }

    /// <summary>
    /// Issue 20, --format modelcar,modelpack with --model hf://: config.json is kept while its layer streams (each file is
    /// still sent once by the Hub, no second request), so the ModelPack config holds what config.json says and the Hub
    /// metadata (name, source, commit), and the index digest is the one hf-fetch + oci-pack --model DIR give. A re-run
    /// whose layers all come from the layer record asks the Hub for config.json alone (nothing else) and gives the same digest.
    /// </summary>
    [Fact]
    public async Task Modelpack_direct_from_the_hub_keeps_config_json_inline_and_equals_the_two_step_pack()
    {
        var repo = _hub.AddRepo("org/llama-like");
        var configJson = """{"architectures":["LlamaForCausalLM"],"model_type":"llama","torch_dtype":"bfloat16","quantization_config":{"quant_method":"fp8"}}"""u8.ToArray();
        repo.Add("config.json", configJson);
        repo.Add("tokenizer.json", TempDir.RandomBytes(70_000, 12));
        repo.Add("model-00001-of-00002.safetensors", TempDir.RandomBytes(3 << 20, 13), lfs: true);
        repo.Add("model-00002-of-00002.safetensors", TempDir.RandomBytes((2 << 20) + 5, 14), lfs: true);
        var dest = _dir.Combine("dest-mp");
        var fetch = await ToolRunner.RunAsync("hf-fetch", [repo.Id, "--dest", dest, "--endpoint", _hub.Endpoint], Env(), TimeSpan.FromMinutes(2));
        Assert.True(fetch.ExitCode == 0, fetch.ToString());
        var twoStep = await ToolRunner.RunAsync("oci-pack", [
            "--model", dest, "--base", "scratch", "--allow-no-shell", "--layer-threshold", "1M", "--format", "modelcar,modelpack",
            "--output", $"docker://{_registry.HostPort}/two/mp:1", "--tls-verify=false"], Env(), TimeSpan.FromMinutes(3));
        Assert.True(twoStep.ExitCode == 0, twoStep.ToString());
        long servedBefore = Served;

        var state = _dir.Combine("state-mp");
        var direct = await Direct($"hf://{repo.Id}@{repo.Commit}", "direct/mp:1", null, "--format", "modelcar,modelpack", "--state-dir", state);
        Assert.True(direct.ExitCode == 0, direct.ToString());
        Assert.Equal(DigestOf(twoStep), DigestOf(direct)); // the index: same ModelCar manifest, same ModelPack manifest and config
        Assert.Equal(repo.Files.Sum(f => (long)f.Content.Length), Served - servedBefore); // each file once: config.json not fetched twice
        Assert.Empty(_hub.Violations);

        var index = await RegistryJson("direct/mp", "manifests", DigestOf(direct));
        var entry = index.GetProperty("manifests").EnumerateArray().Single(m => m.GetProperty("platform").GetProperty("os").GetString() == "unknown");
        var manifest = await RegistryJson("direct/mp", "manifests", entry.GetProperty("digest").GetString()!);
        var config = await RegistryJson("direct/mp", "blobs", manifest.GetProperty("config").GetProperty("digest").GetString()!);
        Assert.Equal("LlamaForCausalLM", config.GetProperty("config").GetProperty("architecture").GetString());
        Assert.Equal("bfloat16", config.GetProperty("config").GetProperty("precision").GetString());
        Assert.Equal("fp8", config.GetProperty("config").GetProperty("quantization").GetString());
        Assert.Equal("safetensors", config.GetProperty("config").GetProperty("format").GetString());
        Assert.Equal("llama", config.GetProperty("descriptor").GetProperty("family").GetString());
        Assert.Equal(repo.Id, config.GetProperty("descriptor").GetProperty("name").GetString());
        Assert.Equal(repo.Commit, config.GetProperty("descriptor").GetProperty("revision").GetString());
        Assert.Equal($"{_hub.Endpoint.TrimEnd('/')}/{repo.Id}", config.GetProperty("descriptor").GetProperty("sourceURL").GetString());

        // every layer from the record: only config.json is asked for again, once
        var servedPerFile = repo.Files.ToDictionary(f => f.Path, f => _hub.Served(f.Path));
        var rerun = await Direct($"hf://{repo.Id}@{repo.Commit}", "direct/mp:2", null, "--format", "modelcar,modelpack", "--state-dir", state);
        Assert.True(rerun.ExitCode == 0, rerun.ToString());
        Assert.Equal(DigestOf(direct), DigestOf(rerun));
        Assert.Equal(configJson.Length, _hub.Served("config.json") - servedPerFile["config.json"]);
        Assert.All(repo.Files.Where(f => f.Path != "config.json"), f => Assert.Equal(servedPerFile[f.Path], _hub.Served(f.Path)));
        Assert.Contains("config.json: its layer is known from the layer record", rerun.StdErr);
    }

    [Fact]
    public async Task Rerun_with_a_state_dir_downloads_nothing()
    {
        var repo = Repo();
        var state = _dir.Combine("state");
        var first = await Direct($"hf://{repo.Id}@{repo.Commit}", "rerun/pack:1", null, "--state-dir", state);
        Assert.True(first.ExitCode == 0, first.ToString());
        int gets = FileGets;
        long served = Served;
        Assert.Equal(repo.Files.Sum(f => (long)f.Content.Length), served);
        var second = await Direct($"hf://{repo.Id}@{repo.Commit}", "rerun/pack:2", null, "--state-dir", state);
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Equal(DigestOf(first), DigestOf(second));
        Assert.Equal(gets, FileGets); // HEADs at the registry only: not one file GET at the Hub
        Assert.Equal(served, Served);
    }

    /// <summary>
    /// Without --state-dir the record goes under the Hugging Face home (HF_HOME, else XDG_CACHE_HOME/huggingface, else
    /// ~/.cache/huggingface): an unchanged re-run there sends no file request to the Hub.
    /// </summary>
    [Theory]
    [InlineData("HF_HOME")]
    [InlineData("XDG_CACHE_HOME")]
    public async Task Rerun_without_a_state_dir_keeps_the_record_under_the_hugging_face_home_and_downloads_nothing(string variable)
    {
        var repo = Repo();
        var home = _dir.Combine("home-" + variable);
        var env = Env(hfHome: variable == "HF_HOME" ? home : null);
        if (variable != "HF_HOME")
        {
            env["HF_HOME"] = null;
            env[variable] = home;
        }
        var first = await Direct($"hf://{repo.Id}@{repo.Commit}", "home/pack:1", env);
        Assert.True(first.ExitCode == 0, first.ToString());
        var record = Path.Combine(home, variable == "HF_HOME" ? "" : "huggingface", "oci-pack", "models--org--model", "layers.json");
        Assert.True(File.Exists(record), $"no {record}:\n{first.StdErr}");
        Assert.Contains(record, first.StdErr);
        int gets = FileGets;
        long served = Served;
        Assert.Equal(repo.Files.Sum(f => (long)f.Content.Length), served);

        var second = await Direct($"hf://{repo.Id}@{repo.Commit}", "home/pack:2", env);
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Equal(DigestOf(first), DigestOf(second));
        Assert.Equal(gets, FileGets); // not one file GET at the Hub
        Assert.Equal(served, Served);
    }

    /// <summary>A Hugging Face home that cannot be written is one warning (naming the way out), not a failure; the run packs.</summary>
    [Fact]
    public async Task An_unwritable_hugging_face_home_is_one_warning_and_the_run_goes_on()
    {
        var repo = Repo();
        // under a regular file: no directory can be made there, whatever the UID (root ignores modes)
        var blocker = _dir.WriteFile("not-a-dir", "x");
        var env = Env(hfHome: Path.Combine(blocker, "hf"));
        var r = await Direct($"hf://{repo.Id}@{repo.Commit}", "nohome/pack:1", env);
        Assert.True(r.ExitCode == 0, r.ToString());
        var warning = Assert.Single(r.StdErr.Split('\n'), l => l.Contains("no layer record", StringComparison.Ordinal));
        Assert.Contains("--state-dir", warning);
        Assert.Contains("HF_HOME", warning);
        // the next run has no record: it reads the model again
        long served = Served;
        var again = await Direct($"hf://{repo.Id}@{repo.Commit}", "nohome/pack:2", env);
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Equal(DigestOf(r), DigestOf(again));
        Assert.Equal(2 * served, Served);
    }

    [Fact]
    public async Task A_body_corrupted_once_is_fetched_again_over_a_new_connection_and_one_corrupted_always_fails_naming_both_hashes_with_nothing_committed()
    {
        var repo = Repo();
        var big = repo.Files[2];
        _hub.CorruptOnce.Add(big.Path); // the first GET of the file sends flipped bytes
        var once = await Direct($"hf://{repo.Id}@{repo.Commit}", "once/pack:1");
        Assert.True(once.ExitCode == 0, once.ToString());
        Assert.Contains("reading it once more", once.StdErr);
        // the refetch resolved again over a new connection and read the new signed URL over another new one
        Assert.Empty(_hub.OnOldConnectionsFrom(big, 2));
        var clean = await Direct($"hf://{repo.Id}@{repo.Commit}", "clean/pack:1");
        Assert.True(clean.ExitCode == 0, clean.ToString());
        Assert.Equal(DigestOf(clean), DigestOf(once));

        _hub.Corrupt.Add(big.Path);
        var always = await Direct($"hf://{repo.Id}@{repo.Commit}", "always/pack:1", null, "--jobs", "1");
        Assert.Equal(1, always.ExitCode);
        var line = Assert.Single(always.StdErr.Split('\n'), l => l.StartsWith("oci-pack: error: ", StringComparison.Ordinal));
        Assert.Contains(big.Path, line);
        Assert.Contains(big.Sha256, line);
        Assert.Matches("got [0-9a-f]{64}", line);
        Assert.Equal(HttpStatusCode.NotFound, await ManifestStatus("always/pack", "1"));
    }

    [Fact]
    public async Task A_missing_revision_names_where_oci_pack_takes_it_from()
    {
        var repo = Repo("org/revs");
        var r = await Direct($"hf://{repo.Id}@v9", "revs/pack:1");
        Assert.Equal(1, r.ExitCode);
        var line = Assert.Single(r.StdErr.Split('\n'), l => l.StartsWith("oci-pack: error: ", StringComparison.Ordinal));
        Assert.Contains("RevisionNotFound", line);
        // the Hub library says what is wrong; oci-pack has no --revision: it names its own option
        Assert.EndsWith("; see the @REVISION of --model hf://ORG/NAME@REVISION", line.TrimEnd());
        Assert.DoesNotContain("--revision", line);
    }

    [Fact]
    public async Task Gated_repo_fails_without_a_token_and_packs_with_one_that_never_reaches_the_cdn_or_the_log()
    {
        var repo = Repo("org/gated", gated: true);
        const string token = "approved_tok_SECRET42";
        _hub.ValidTokens.Add(token);
        var without = await Direct($"hf://{repo.Id}", "gated/pack:1");
        Assert.Equal(1, without.ExitCode);
        var line = Assert.Single(without.StdErr.Split('\n'), l => l.StartsWith("oci-pack: error: ", StringComparison.Ordinal));
        Assert.Contains("GatedRepo", line);
        Assert.Contains("HF_TOKEN", line);
        Assert.Contains("--token-file", line);

        var tokenFile = _dir.WriteFile("token", token);
        var with = await Direct($"hf://{repo.Id}", "gated/pack:1", null, "--token-file", tokenFile, "--verbose");
        Assert.True(with.ExitCode == 0, with.ToString());
        Assert.DoesNotContain(token, with.AllOutput);
        Assert.Empty(_hub.Violations); // the CDN origin records any Authorization it receives
        Assert.Contains(_hub.Requests, r => r.Port == _hub.CdnPort);
        Assert.DoesNotContain(_hub.Requests, r => r.Port == _hub.CdnPort && r.Authorization is not null);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_cut_hub_body_resumes_with_Range_or_skips_ahead_when_Range_is_ignored_and_gives_the_same_image(bool ignoreRange)
    {
        var repo = Repo();
        var clean = await Direct($"hf://{repo.Id}@{repo.Commit}", "clean/pack:1");
        Assert.True(clean.ExitCode == 0, clean.ToString());
        var big = repo.Files[2];
        _hub.IgnoreRange = ignoreRange;
        _hub.CutAfter = (path, nth) => path == big.Path && nth is 2 or 3 ? 1_000_000 : null; // the run's first two bodies of it break
        var cut = await Direct($"hf://{repo.Id}@{repo.Commit}", "cut/pack:1");
        Assert.True(cut.ExitCode == 0, cut.ToString());
        Assert.Equal(DigestOf(clean), DigestOf(cut));
        Assert.Contains("continuing with Range", cut.StdErr);
        if (!ignoreRange)
        {
            Assert.Contains(_hub.Resolves, r => r.Range is { } range && range.StartsWith("bytes=", StringComparison.Ordinal) && !range.StartsWith("bytes=0-", StringComparison.Ordinal));
        }
        var back = _dir.Combine($"back-{ignoreRange}");
        var copy = await PeerTools.RunAsync("skopeo", ["copy", "--preserve-digests", "--src-tls-verify=false", $"docker://{_registry.HostPort}/cut/pack:1", $"oci:{back}:1"]);
        Assert.True(copy.ExitCode == 0, copy.ToString());
    }

    [Fact]
    public async Task A_registry_side_cut_resumes_from_the_session_offset_with_a_Hub_Range_at_the_matching_file_position()
    {
        var repo = Repo();
        var clean = await Direct($"hf://{repo.Id}@{repo.Commit}", "clean/pack:1");
        Assert.True(clean.ExitCode == 0, clean.ToString());
        await using var proxy = await FaultProxy.StartAsync(_registry.BaseUri);
        int patches = 0;
        proxy.Decide = (_, m, _) => m == "PATCH" && Interlocked.Increment(ref patches) == 3 ? Fault.CutBeforeForward : Fault.Forward;
        long servedBefore = Served;
        var r = await ToolRunner.RunAsync("oci-pack", [
            "--model", $"hf://{repo.Id}@{repo.Commit}", "--endpoint", _hub.Endpoint, "--base", "scratch", "--allow-no-shell", "--layer-threshold", "1M",
            "--output", $"docker://{proxy.HostPort}/resumed/pack:1", "--tls-verify=false", "--chunk-size", "1M", "--jobs", "1"], Env(), TimeSpan.FromMinutes(3));
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(DigestOf(clean), DigestOf(r));
        // the layer re-read from the registry's offset asked the Hub for the rest of the file only
        Assert.Contains(_hub.Resolves, q => q.Range is { } range && range.StartsWith("bytes=", StringComparison.Ordinal) && !range.StartsWith("bytes=0-", StringComparison.Ordinal));
        Assert.True(Served - servedBefore < 2 * repo.Files.Sum(f => (long)f.Content.Length), "the whole model was fetched again");
        var back = _dir.Combine("back-resumed");
        var copy = await PeerTools.RunAsync("skopeo", ["copy", "--preserve-digests", "--src-tls-verify=false", $"docker://{_registry.HostPort}/resumed/pack:1", $"oci:{back}:1"]);
        Assert.True(copy.ExitCode == 0, copy.ToString());
    }
}
