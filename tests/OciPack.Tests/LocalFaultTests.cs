using ModelCar.Packing;
using System.Diagnostics;
using System.Text.Json;
using ModelCar.TestSupport;

namespace ModelCar.OciPack.Tests;

/// <summary>Issue 10's local-file fault paths of oci-pack: concurrent runs, killed runs, half-downloaded models, corrupt bases.</summary>
public sealed class LocalFaultTests : IDisposable
{
    private readonly TempDir _dir = new("oci-pack-faults");

    public void Dispose() => _dir.Dispose();

    private string BaseLayout(bool gzip = false)
    {
        var path = _dir.Combine($"base-{Guid.NewGuid():N}"[..13]);
        Directory.CreateDirectory(path);
        TestBases.WriteLayout(path, "1", TestBases.BusyboxLayer(), gzip);
        return path;
    }

    private string Model(string name = "model")
    {
        _dir.WriteFile($"{name}/config.json", "{}");
        _dir.WriteFile($"{name}/weights.bin", TempDir.RandomBytes(1 << 20, 7));
        return _dir.Combine(name);
    }

    private static string ErrorLine(ToolResult r) =>
        Assert.Single(r.StdErr.Split('\n'), l => l.StartsWith("oci-pack: error:", StringComparison.Ordinal));

    private static async Task<ToolResult> Peer(string tool, params string[] args)
    {
        var r = await PeerTools.RunAsync(tool, args);
        Assert.True(r.ExitCode == 0, $"{tool} {string.Join(' ', args)}\n{r}");
        return r;
    }

    private static List<string?> Tags(string layout) =>
        JsonDocument.Parse(File.ReadAllBytes(Path.Combine(layout, "index.json"))).RootElement.GetProperty("manifests").EnumerateArray()
            .Select(m => m.GetProperty("annotations").GetProperty("org.opencontainers.image.ref.name").GetString()).ToList();

    [Fact]
    public async Task Concurrent_packs_into_one_layout_keep_every_tag()
    {
        var model = Model();
        var baseDir = BaseLayout();
        var output = _dir.Combine("shared");
        const int runs = 6;
        // same layers (the same blobs land at once), different manifests (an annotation each)
        var results = await Task.WhenAll(Enumerable.Range(0, runs).Select(i => ToolRunner.RunAsync("oci-pack",
            ["--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{output}:t{i}", "--annotation", $"run={i}"], null, TimeSpan.FromMinutes(2))));
        Assert.All(results, r => Assert.True(r.ExitCode == 0, r.ToString()));
        Assert.Equal(Enumerable.Range(0, runs).Select(i => $"t{i}").Order(), Tags(output).Order());
        var listed = (await Peer("umoci", "ls", "--layout", output)).StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(runs, listed.Length);
        for (int i = 0; i < runs; i++)
        {
            var inspect = JsonDocument.Parse((await Peer("skopeo", "inspect", "--raw", $"oci:{output}:t{i}")).StdOut).RootElement;
            Assert.Equal(i.ToString(), inspect.GetProperty("annotations").GetProperty("run").GetString());
        }
        await Peer("skopeo", "copy", $"oci:{output}:t{runs - 1}", $"dir:{_dir.Combine("copy")}"); // verifies every blob digest
        Assert.Empty(Directory.GetFiles(Path.Combine(output, "blobs", "sha256"), ".*"));
    }

    [Fact]
    public async Task A_run_waits_for_the_layout_lock_or_fails_after_lock_timeout()
    {
        var model = Model();
        var baseDir = BaseLayout();
        var output = _dir.Combine("locked");
        Directory.CreateDirectory(output);
        using (var held = LockContention.Hold(Path.Combine(output, ".oci-pack.lock")))
        {
            var r = await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{output}:a", "--lock-timeout", "1");
            Assert.Equal(1, r.ExitCode);
            var line = ErrorLine(r);
            Assert.Contains("another run", line);
            Assert.Contains("--lock-timeout", line);
            Assert.False(File.Exists(Path.Combine(output, "index.json")));

            var waiting = ToolRunner.RunAsync("oci-pack", "--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{output}:a");
            await LockContention.AssertWaitsUntilReleasedAsync(held, waiting);
        }
        Assert.Equal(["a"], Tags(output));
    }

    /// <summary>Starts oci-pack, SIGKILLs it once <paramref name="temp"/> finds a temp file of at least 64 MiB, returns that file.</summary>
    private static async Task<string> KillWhenTempAppears(string[] args, Func<string?> temp)
    {
        using var process = ToolRunner.Start("oci-pack", args);
        var clock = Stopwatch.StartNew();
        string? found = null;
        while (!process.HasExited && clock.Elapsed < TimeSpan.FromSeconds(60) && (found = temp()) is null)
        {
            await Task.Delay(5);
        }
        if (process.HasExited)
        {
            Assert.Fail("finished before it could be killed\n" + await process.StandardError.ReadToEndAsync());
        }
        process.Kill(entireProcessTree: true);
        await process.WaitForExitAsync();
        Assert.True(found is not null && File.Exists(found), $"no temp file seen ({found})");
        return found!;
    }

    /// <summary>A temp file of at least 64 MiB; the small temp blobs the run renames meanwhile may vanish between listing and stat.</summary>
    private static string? BigFile(string dir, string pattern) =>
        Directory.Exists(dir) ? Directory.GetFiles(dir, pattern).FirstOrDefault(f => new FileInfo(f) is { Exists: true } i && LengthOrZero(i) >= 64 << 20) : null;

    private static long LengthOrZero(FileInfo file)
    {
        try
        {
            return file.Length;
        }
        catch (FileNotFoundException)
        {
            return 0;
        }
    }

    [Fact]
    public async Task Temp_files_of_a_killed_run_are_removed_by_the_next_run()
    {
        var model = _dir.Combine("huge-model");
        Directory.CreateDirectory(model);
        _dir.WriteFile("huge-model/config.json", "{}");
        await Peer("truncate", "-s", "3G", Path.Combine(model, "huge.bin")); // sparse: reads fast, writes take a while
        var baseDir = BaseLayout();
        var small = Model();

        var layout = _dir.Combine("layout");
        var blobs = Path.Combine(layout, "blobs", "sha256");
        var stale = await KillWhenTempAppears(["--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{layout}:big"], () => BigFile(blobs, ".tmp-*"));
        var again = await ToolRunner.RunAsync("oci-pack", "--model", small, "--base", $"oci:{baseDir}:1", "--output", $"oci:{layout}:small");
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.False(File.Exists(stale), "the killed run's temp blob is still there");
        Assert.Contains("stale", again.StdErr);
        Assert.Empty(Directory.GetFiles(blobs, ".*"));
        await Peer("skopeo", "inspect", $"oci:{layout}:small");

        var archive = _dir.Combine("out", "m.tar");
        Directory.CreateDirectory(Path.GetDirectoryName(archive)!);
        var staleTar = await KillWhenTempAppears(["--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci-archive:{archive}"], () => BigFile(Path.GetDirectoryName(archive)!, ".m.tar.*.tmp"));
        // a live run's temp file is left alone: a writer keeps it locked (as OciArchiveWriter does) while it lives
        var liveTemp = Path.Combine(Path.GetDirectoryName(archive)!, $".m.tar.{Guid.NewGuid():N}.tmp");
        using (var live = new FileStream(liveTemp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None))
        {
            live.Write(new byte[4096]);
            live.Flush();
            var second = await ToolRunner.RunAsync("oci-pack", "--model", small, "--base", $"oci:{baseDir}:1", "--output", $"oci-archive:{archive}");
            Assert.True(second.ExitCode == 0, second.ToString());
            Assert.False(File.Exists(staleTar), "the killed run's temp archive is still there");
            Assert.True(File.Exists(liveTemp), "a live run's temp archive was removed");
        }
        var third = await ToolRunner.RunAsync("oci-pack", "--model", small, "--base", $"oci:{baseDir}:1", "--output", $"oci-archive:{archive}");
        Assert.True(third.ExitCode == 0, third.ToString());
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(archive)!, ".m.tar*")); // once its writer is gone, it is stale too
        await Peer("skopeo", "inspect", $"oci-archive:{archive}");
    }

    [Fact]
    public async Task Half_downloaded_hf_fetch_dir_is_refused_unless_allow_incomplete()
    {
        var baseDir = BaseLayout();
        var model = Model();
        // hf-fetch still running or killed: verified files, a partial one, no snapshot.json
        _dir.WriteFile("model/.hf-fetch/verified.jsonl", """{"path":"config.json","size":2,"hash":"x","mtimeTicks":1}""" + "\n" + """{"path":"weights.bin","size":1048576,"hash":"y","mtimeTicks":1}""" + "\n");
        _dir.WriteFile("model/.hf-fetch/incomplete/0123.incomplete", new byte[10]);
        _dir.WriteFile("model/.hf-fetch/incomplete/0123.incomplete.json", "{}");
        var output = _dir.Combine("out");
        var r = await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{output}:x");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("model dir is an incomplete hf-fetch download: 2 of 3 files", ErrorLine(r));
        Assert.Contains("--allow-incomplete", ErrorLine(r));
        Assert.False(Directory.Exists(output));

        // a snapshot that lists a file which is not there
        Directory.Delete(Path.Combine(model, ".hf-fetch", "incomplete"), recursive: true);
        _dir.WriteFile("model/.hf-fetch/snapshot.json",
            """{"repoId":"acme/tiny","repoType":"model","revision":"main","commit":"0123456789abcdef0123456789abcdef01234567","endpoint":"https://huggingface.co","files":[{"path":"config.json","size":2},{"path":"weights.bin","size":1048576},{"path":"model.safetensors","size":5}]}""");
        var missing = await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{output}:x");
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("model dir is an incomplete hf-fetch download: 2 of 3 files", ErrorLine(missing));
        // files left out by --exclude do not count
        var excluded = await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{output}:x", "--exclude", "*.safetensors");
        Assert.True(excluded.ExitCode == 0, excluded.ToString());

        var allowed = await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{output}:y", "--allow-incomplete");
        Assert.True(allowed.ExitCode == 0, allowed.ToString());
        Assert.Contains("incomplete hf-fetch download", allowed.StdErr);
        Assert.Equal(["x", "y"], Tags(output));
    }

    [Fact]
    public async Task A_corrupt_gzip_base_layer_is_reported_as_corrupt_naming_the_blob()
    {
        var model = Model();
        var baseDir = BaseLayout(gzip: true);
        var manifestDigest = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(baseDir, "index.json"))).RootElement.GetProperty("manifests")[0].GetProperty("digest").GetString()!;
        var layerDigest = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(baseDir, "blobs", "sha256", manifestDigest[7..]))).RootElement
            .GetProperty("layers")[0].GetProperty("digest").GetString()!;
        var layerPath = Path.Combine(baseDir, "blobs", "sha256", layerDigest[7..]);
        var good = File.ReadAllBytes(layerPath);
        var output = _dir.Combine("out");

        // other bytes under the blob's name: a valid gzip tar, but one without sh (the scan alone says "no /bin/sh")
        using (var ms = new MemoryStream())
        {
            using (var gz = new System.IO.Compression.GZipStream(ms, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true))
            {
                gz.Write(TestBases.BusyboxLayer(withShell: false));
            }
            File.WriteAllBytes(layerPath, ms.ToArray());
        }
        // the tail of the deflate stream and the gzip trailer zeroed: the gzip error must not hide the digest
        var zeroed = (byte[])good.Clone();
        Array.Clear(zeroed, zeroed.Length / 2, zeroed.Length - zeroed.Length / 2);
        foreach (var corrupt in new[] { File.ReadAllBytes(layerPath), zeroed })
        {
            File.WriteAllBytes(layerPath, corrupt);
            var r = await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{output}:x");
            Assert.Equal(1, r.ExitCode);
            var line = ErrorLine(r);
            Assert.False(line.Contains("/bin/sh", StringComparison.Ordinal), line);
            Assert.True(line.Contains(layerDigest, StringComparison.Ordinal) && line.Contains("digest check failed", StringComparison.Ordinal), line);
            Assert.False(File.Exists(Path.Combine(output, "index.json")));
        }
    }
}
