using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using ModelCar.TestSupport;

namespace ModelCar.OciPack.Tests;

/// <summary>
/// oci-pack --output docker://… (issue 12): the PUBLISHED binary streams the ModelCar straight into
/// registry containers, from one read of the model, mixed with layout/archive outputs; re-runs;
/// a source file changed during the pack.
/// </summary>
public sealed class OnePassTests : IDisposable
{
    private readonly TempDir _dir = new("oci-pack-onepass");

    public void Dispose() => _dir.Dispose();

    private string BaseLayout()
    {
        var path = _dir.Combine("base");
        if (!Directory.Exists(path))
        {
            Directory.CreateDirectory(path);
            TestBases.WriteLayout(path, "1", TestBases.BusyboxLayer(), gzip: true);
        }
        return path;
    }

    private string Model(int bigMiB = 3)
    {
        var m = _dir.Combine("model");
        _dir.WriteFile("model/config.json", """{"architectures":["X"]}""");
        _dir.WriteFile("model/model-00001-of-00002.safetensors", TempDir.RandomBytes(bigMiB << 20, 1));
        _dir.WriteFile("model/model-00002-of-00002.safetensors", TempDir.RandomBytes(2 << 20, 2));
        _dir.WriteFile("model/tokenizer/tokenizer.json", """{"v":1}""");
        File.CreateSymbolicLink(Path.Combine(m, "tokenizer", "config.json"), "../config.json");
        return m;
    }

    private static Task<ToolResult> Pack(params string[] args) =>
        ToolRunner.RunAsync("oci-pack", args, new Dictionary<string, string?> { ["SOURCE_DATE_EPOCH"] = null, ["REGISTRY_AUTH_FILE"] = null });

    private static string[] Lines(string s) => s.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>Every blob of a layout (digest → bytes) and its index's manifest digests.</summary>
    private static (Dictionary<string, byte[]> Blobs, string[] Manifests) ReadLayout(string dir)
    {
        var blobs = Directory.EnumerateFiles(Path.Combine(dir, "blobs", "sha256")).Where(f => !Path.GetFileName(f).StartsWith('.'))
            .ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes);
        using var index = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "index.json")));
        var manifests = index.RootElement.GetProperty("manifests").EnumerateArray().Select(m => m.GetProperty("digest").GetString()!).ToArray();
        return (blobs, manifests);
    }

    private static void AssertSameBlobs(string expectedLayout, string actualLayout)
    {
        var expected = ReadLayout(expectedLayout);
        var actual = ReadLayout(actualLayout);
        Assert.Equal(expected.Manifests, actual.Manifests);
        Assert.Equal(expected.Blobs.Keys.Order(), actual.Blobs.Keys.Order());
        foreach (var (k, v) in expected.Blobs)
        {
            Assert.True(v.AsSpan().SequenceEqual(actual.Blobs[k]), $"blob {k} differs");
        }
    }

    [Fact]
    public async Task One_run_to_two_registries_one_with_auth_plus_layout_and_archive_gives_the_layout_image_everywhere()
    {
        const string user = "pusher";
        var password = "S3cret-" + Guid.NewGuid().ToString("N")[..12];
        var htpasswd = await PeerTools.RunAsync("htpasswd", ["-Bbn", user, password]);
        Assert.Equal(0, htpasswd.ExitCode);
        await using var plain = await new RegistryContainer().StartAsync();
        await using var secured = await new RegistryContainer(new RegistryContainerOptions { Htpasswd = htpasswd.StdOut }).StartAsync();
        var passwordFile = _dir.WriteFile("password", password);
        var model = Model();
        var baseDir = BaseLayout();

        // the reference: today's layout output
        var reference = _dir.Combine("reference");
        var r0 = await Pack("--model", model, "--base", $"oci:{baseDir}:1", "--layer-threshold", "1M", "--output", $"oci:{reference}:v1");
        Assert.True(r0.ExitCode == 0, r0.ToString());
        var digest = r0.StdOut.Trim();
        Assert.Matches("^sha256:[0-9a-f]{64}$", digest);
        Directory.Delete(Path.Combine(model, ".oci-pack"), recursive: true); // the second run reads the model again

        var results = _dir.Combine("results");
        var layout = _dir.Combine("layout");
        var archive = _dir.Combine("image.tar");
        var r = await Pack("--model", model, "--base", $"oci:{baseDir}:1", "--layer-threshold", "1M",
            "--output", $"docker://{plain.HostPort}/models/tiny:v1",
            "--output", $"oci:{layout}:v1",
            "--output", $"docker://{plain.HostPort}/mirror/tiny:v1",
            "--output", $"docker://{secured.HostPort}/models/tiny:v1",
            "--output", $"oci-archive:{archive}:v1",
            "--login", $"{secured.HostPort}={user}:{passwordFile}", "--tls-verify=false", "--results-dir", results, "--verbose");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.DoesNotContain(password, r.AllOutput);
        Assert.Equal(
            [$"{plain.HostPort}/models/tiny@{digest}", digest, $"{plain.HostPort}/mirror/tiny@{digest}", $"{secured.HostPort}/models/tiny@{digest}", digest],
            Lines(r.StdOut));
        Assert.Equal(digest, File.ReadAllText(Path.Combine(results, "IMAGE_DIGEST")).Trim());
        Assert.Equal($"{plain.HostPort}/models/tiny@{digest}", File.ReadAllText(Path.Combine(results, "IMAGE_URL")).Trim());

        // per host, each blob is sent once: the 3 model layers streamed to the first output of the host
        // (then present there, mounted into the second), base layer + config uploaded once and mounted
        var plainStats = PushStats(r.StdErr, plain.HostPort);
        Assert.Equal(2, plainStats.Count);
        Assert.Equal((3, 5, 2), (plainStats.Sum(s => s.Present), plainStats.Sum(s => s.Mounted), plainStats.Sum(s => s.Uploaded)));
        var securedStats = Assert.Single(PushStats(r.StdErr, secured.HostPort));
        Assert.Equal((3, 0, 2), (securedStats.Present, securedStats.Mounted, securedStats.Uploaded));

        // the layout and the archive outputs of the same run are the reference image
        AssertSameBlobs(reference, layout);
        var fromArchive = _dir.Combine("from-archive");
        Directory.CreateDirectory(fromArchive);
        var untar = await PeerTools.RunAsync("tar", ["-xf", archive, "-C", fromArchive]);
        Assert.True(untar.ExitCode == 0, untar.ToString());
        AssertSameBlobs(reference, fromArchive);

        // skopeo pulls each registry's image back to a layout equal to the reference
        var back1 = _dir.Combine("back1");
        var c1 = await PeerTools.RunAsync("skopeo", ["copy", "--preserve-digests", "--src-tls-verify=false", $"docker://{plain.HostPort}/mirror/tiny:v1", $"oci:{back1}:v1"]);
        Assert.True(c1.ExitCode == 0, c1.ToString());
        AssertSameBlobs(reference, back1);
        var back2 = _dir.Combine("back2");
        var c2 = await PeerTools.RunAsync("skopeo", ["copy", "--preserve-digests", "--src-tls-verify=false", "--src-creds", $"{user}:{password}", $"docker://{secured.HostPort}/models/tiny:v1", $"oci:{back2}:v1"]);
        Assert.True(c2.ExitCode == 0, c2.ToString());
        AssertSameBlobs(reference, back2);
    }

    [Fact]
    public async Task Unchanged_rerun_reads_no_model_bytes_and_sends_only_HEAD_requests()
    {
        await using var registry = await new RegistryContainer().StartAsync();
        var model = Model();
        var baseDir = BaseLayout();
        var state = _dir.Combine("state");
        string[] args = ["--model", model, "--base", $"oci:{baseDir}:1", "--layer-threshold", "1M", "--output", $"docker://{registry.HostPort}/models/rerun:v1", "--tls-verify=false", "--state-dir", state];
        var first = await Pack(args);
        Assert.True(first.ExitCode == 0, first.ToString());
        var pinned = first.StdOut.Trim();
        Assert.StartsWith($"{registry.HostPort}/models/rerun@sha256:", pinned);
        Assert.True(File.Exists(Path.Combine(state, "layers.json")));
        Assert.False(Directory.Exists(Path.Combine(model, ".oci-pack")), "with --state-dir the model dir is not written");

        // rewrite the big files in place with other bytes, keeping size, mtime and inode: a run that read
        // them would make another image; the re-run must take every layer from the record instead
        foreach (var name in new[] { "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors" })
        {
            var path = Path.Combine(model, name);
            var mtime = File.GetLastWriteTimeUtc(path);
            var length = new FileInfo(path).Length;
            using (var f = new FileStream(path, FileMode.Open, FileAccess.Write))
            {
                f.Write(TempDir.RandomBytes((int)length, 99));
            }
            File.SetLastWriteTimeUtc(path, mtime);
        }
        var logsBefore = await registry.LogsAsync();
        var second = await Pack(args);
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Equal(pinned, second.StdOut.Trim());
        Assert.Contains("3 known from the layer record", second.StdErr);
        Assert.Matches("blobs already present, 0 mounted, 0 uploaded .*manifest unchanged", second.StdErr);
        var logsAfter = await registry.LogsAsync();
        Assert.True(Count(logsAfter, "HEAD") > Count(logsBefore, "HEAD"), "no HEAD request in the registry log:\n" + logsAfter);
        foreach (var method in new[] { "POST", "PATCH", "PUT", "GET /v2/models" })
        {
            Assert.True(Count(logsAfter, method) == Count(logsBefore, method), $"the re-run sent {method} requests:\n{logsAfter[Math.Min(logsBefore.Length, logsAfter.Length)..]}");
        }

        // a touched file is a changed file: read again, and here its new bytes make a new image
        File.SetLastWriteTimeUtc(Path.Combine(model, "model-00001-of-00002.safetensors"), DateTime.UtcNow);
        var third = await Pack(args);
        Assert.True(third.ExitCode == 0, third.ToString());
        Assert.NotEqual(pinned, third.StdOut.Trim());
        Assert.Contains("2 known from the layer record", third.StdErr);
    }

    [Fact]
    public async Task A_file_modified_during_the_pack_fails_with_one_line_and_nothing_tagged()
    {
        await using var registry = await new RegistryContainer().StartAsync();
        var model = Model(bigMiB: 24);
        var baseDir = BaseLayout();
        await using var proxy = new PausingProxy(registry.HostPort, pauseAfterBytes: 6 << 20);
        var layout = _dir.Combine("layout");
        var run = Pack("--model", model, "--base", $"oci:{baseDir}:1", "--layer-threshold", "1M", "--jobs", "1",
            "--output", $"docker://{proxy.HostPort}/models/changed:v1", "--output", $"oci:{layout}:v1", "--tls-verify=false");

        // the registry stops taking bytes in the middle of the big layer; the one read waits for it
        var paused = await Task.WhenAny(proxy.Paused, run);
        Assert.True(paused == proxy.Paused, "the pack ended before the proxy paused: " + (run.IsCompleted ? run.Result.ToString() : string.Empty));
        using (var f = new FileStream(Path.Combine(model, "model-00001-of-00002.safetensors"), FileMode.Append))
        {
            f.Write(new byte[4096]);
        }
        proxy.Release();
        var r = await run;

        Assert.Equal(1, r.ExitCode);
        var error = Assert.Single(Lines(r.StdErr), l => l.StartsWith("oci-pack: error:", StringComparison.Ordinal));
        Assert.Contains("model-00001-of-00002.safetensors' changed while packing", error);
        Assert.DoesNotContain("   at ", r.StdErr); // no stack trace
        Assert.Empty(r.StdOut);
        Assert.False(File.Exists(Path.Combine(layout, "index.json")), "the layout got an index.json");
        using var http = new HttpClient();
        var head = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, new Uri(registry.BaseUri, "/v2/models/changed/manifests/v1")));
        Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
    }

    private static List<(int Present, int Mounted, int Uploaded)> PushStats(string stderr, string host) =>
        System.Text.RegularExpressions.Regex.Matches(stderr, System.Text.RegularExpressions.Regex.Escape(host) + @"/\S+: (\d+) blobs already present, (\d+) mounted, (\d+) uploaded")
            .Select(m => (int.Parse(m.Groups[1].Value), int.Parse(m.Groups[2].Value), int.Parse(m.Groups[3].Value))).ToList();

    /// <summary>Requests with that method (or method and path start) in a registry log: access-log lines and distribution's http.request.method=… fields.</summary>
    private static int Count(string log, string what)
    {
        var method = what.Split(' ')[0];
        var rest = what.Length > method.Length ? what[(method.Length + 1)..] : null;
        return Lines(log).Count(l => rest is null
            ? l.Contains($"\"{method} /", StringComparison.Ordinal) || l.Contains($"http.request.method={method} ", StringComparison.Ordinal)
            : l.Contains($"\"{method} /{rest.TrimStart('/')}", StringComparison.Ordinal));
    }

    /// <summary>A TCP proxy that stops forwarding client bytes after a threshold until released.</summary>
    private sealed class PausingProxy : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly string _upstream;
        private readonly long _pauseAfter;
        private readonly TaskCompletionSource _paused = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly CancellationTokenSource _stop = new();
        private long _forwarded;

        public PausingProxy(string upstream, long pauseAfterBytes)
        {
            _upstream = upstream;
            _pauseAfter = pauseAfterBytes;
            _listener.Start();
            _ = AcceptAsync();
        }

        public string HostPort => $"127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

        public Task Paused => _paused.Task;

        public void Release() => _released.TrySetResult();

        private async Task AcceptAsync()
        {
            try
            {
                while (!_stop.IsCancellationRequested)
                {
                    var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                    _ = HandleAsync(client);
                }
            }
            catch (Exception)
            {
                // stopped
            }
        }

        private async Task HandleAsync(TcpClient client)
        {
            using var c = client;
            using var server = new TcpClient();
            var parts = _upstream.Split(':');
            try
            {
                await server.ConnectAsync(parts[0], int.Parse(parts[1]), _stop.Token);
                var up = PumpAsync(c.GetStream(), server.GetStream(), count: true);
                var down = PumpAsync(server.GetStream(), c.GetStream(), count: false);
                await Task.WhenAny(up, down);
            }
            catch (Exception)
            {
                // connection ended
            }
        }

        private async Task PumpAsync(Stream from, Stream to, bool count)
        {
            var buffer = new byte[64 << 10];
            int n;
            while ((n = await from.ReadAsync(buffer, _stop.Token)) > 0)
            {
                if (count && Interlocked.Add(ref _forwarded, n) > _pauseAfter && !_released.Task.IsCompleted)
                {
                    _paused.TrySetResult();
                    await _released.Task.WaitAsync(_stop.Token);
                }
                await to.WriteAsync(buffer.AsMemory(0, n), _stop.Token);
            }
            to.Close();
        }

        public ValueTask DisposeAsync()
        {
            _released.TrySetResult();
            _stop.Cancel();
            _listener.Stop();
            return ValueTask.CompletedTask;
        }
    }
}
