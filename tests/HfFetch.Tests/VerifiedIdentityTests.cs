using System.Security.Cryptography;
using System.Text.Json;
using ModelCar.TestSupport;

namespace ModelCar.HfFetch.Tests;

/// <summary>
/// hf-fetch → oci-pack DIR (the default pipeline's shape), both published binaries: hf-fetch records in
/// snapshot.json, per verified file, the identity it had when verified (size, mtime, inode); oci-pack takes that
/// file's sha256 for the provenance annotation from the record without hashing while the file still has that
/// identity (the one read then hashes the bytes once: the layer digest), and hashes and checks it otherwise.
/// </summary>
public sealed class VerifiedIdentityTests : IAsyncLifetime
{
    private readonly TempDir _dir = new("hf-identity");
    private readonly FakeHub _hub = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _hub.DisposeAsync();
        _dir.Dispose();
    }

    private Dictionary<string, string?> Env() => new()
    {
        ["HF_TOKEN"] = null,
        ["HUGGING_FACE_HUB_TOKEN"] = null,
        ["HF_ENDPOINT"] = null,
        ["HF_HUB_OFFLINE"] = null,
        ["HF_HOME"] = _dir.Combine("hf-home"),
        ["SOURCE_DATE_EPOCH"] = null,
    };

    private static string Hex(byte[] b) => Convert.ToHexStringLower(SHA256.HashData(b));

    /// <summary>A repo of two LFS files over the layer threshold (1M) and a small git file, fetched into DIR.</summary>
    private async Task<(string Dest, FakeFile A, FakeFile B)> FetchAsync()
    {
        var repo = _hub.AddRepo("org/model");
        repo.Add("config.json", "{\"a\":1}"u8.ToArray());
        var a = repo.Add("model-00001-of-00002.safetensors", TempDir.RandomBytes((2 << 20) + 5, 11), lfs: true);
        var b = repo.Add("model-00002-of-00002.safetensors", TempDir.RandomBytes((1 << 20) + 9, 12), lfs: true);
        var dest = _dir.Combine("dest");
        var fetch = await ToolRunner.RunAsync("hf-fetch", [repo.Id, "--dest", dest, "--endpoint", _hub.Endpoint], Env(), TimeSpan.FromMinutes(2));
        Assert.True(fetch.ExitCode == 0, fetch.ToString());
        return (dest, a, b);
    }

    private Task<ToolResult> PackAsync(string dest, string output) =>
        ToolRunner.RunAsync("oci-pack", ["--model", dest, "--base", "scratch", "--allow-no-shell", "--layer-threshold", "1M", "--output", $"oci:{output}:v1", "--verbose"],
            Env(), TimeSpan.FromMinutes(2));

    private static JsonElement Json(string path) => JsonDocument.Parse(File.ReadAllBytes(path)).RootElement.Clone();

    /// <summary>Title → (file sha256 annotation, layer digest) of each single-file model layer.</summary>
    private static Dictionary<string, (string? FileSha, string Digest)> Layers(string layout)
    {
        var root = Json(Path.Combine(layout, "index.json")).GetProperty("manifests")[0].GetProperty("digest").GetString()!;
        var manifest = Json(Path.Combine(layout, "blobs", "sha256", root["sha256:".Length..]));
        return manifest.GetProperty("layers").EnumerateArray().Select(l => (
                Annotations: l.GetProperty("annotations").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()),
                Digest: l.GetProperty("digest").GetString()!))
            .ToDictionary(x => x.Annotations["org.opencontainers.image.title"]!, x => (x.Annotations.GetValueOrDefault("io.modelcar.file.sha256"), x.Digest));
    }

    /// <summary>Rewrites the file's bytes in place (same inode, same size), then sets its mtime back: the identity a stat sees is unchanged.</summary>
    private static void RewriteInPlaceKeepingIdentity(string path, byte[] content)
    {
        var mtime = File.GetLastWriteTimeUtc(path);
        using (var f = new FileStream(path, FileMode.Open, FileAccess.Write))
        {
            f.Write(content);
        }
        File.SetLastWriteTimeUtc(path, mtime);
    }

    private static async Task<ulong> InodeAsync(string path)
    {
        var r = await PeerTools.RunAsync("stat", ["-c", "%i", path]);
        Assert.True(r.ExitCode == 0, r.ToString());
        return ulong.Parse(r.StdOut.Trim(), System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task Hf_fetch_records_the_identity_each_file_had_when_verified()
    {
        var (dest, a, b) = await FetchAsync();
        var files = Json(Path.Combine(dest, ".hf-fetch", "snapshot.json")).GetProperty("files").EnumerateArray().ToDictionary(f => f.GetProperty("path").GetString()!);
        foreach (var f in new[] { a, b })
        {
            var entry = files[f.Path];
            var local = Path.Combine(dest, f.Path);
            Assert.Equal(f.Sha256, entry.GetProperty("sha256").GetString());
            Assert.Equal(f.Content.Length, entry.GetProperty("size").GetInt64());
            Assert.True(entry.TryGetProperty("mtimeTicks", out var ticks), entry.GetRawText());
            Assert.Equal(File.GetLastWriteTimeUtc(local).Ticks, ticks.GetInt64());
            Assert.True(entry.TryGetProperty("inode", out var inode), entry.GetRawText());
            Assert.Equal(await InodeAsync(local), inode.GetUInt64());
        }

        // a re-run that verifies nothing again keeps the identities of the first verification
        var before = File.ReadAllText(Path.Combine(dest, ".hf-fetch", "snapshot.json"));
        var again = await ToolRunner.RunAsync("hf-fetch", ["org/model", "--dest", dest, "--endpoint", _hub.Endpoint], Env(), TimeSpan.FromMinutes(2));
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Equal(before, File.ReadAllText(Path.Combine(dest, ".hf-fetch", "snapshot.json")));
    }

    [Fact]
    public async Task Oci_pack_takes_the_recorded_sha256_without_hashing_while_the_file_keeps_its_identity()
    {
        var (dest, a, _) = await FetchAsync();
        // the proof that oci-pack does not hash the trusted file: its bytes change behind the record's back (same size,
        // inode and mtime); the annotation still says the recorded sha256, while the layer (hashed: its digest) has the new bytes
        var changed = TempDir.RandomBytes(a.Content.Length, 99);
        RewriteInPlaceKeepingIdentity(Path.Combine(dest, a.Path), changed);
        var output = _dir.Combine("out");
        var r = await PackAsync(dest, output);
        Assert.True(r.ExitCode == 0, r.ToString());
        var layer = Layers(output)[$"/models/{a.Path}"];
        Assert.Equal(a.Sha256, layer.FileSha);
        Assert.NotEqual(Hex(changed), layer.FileSha);
        Assert.Contains("not hashed", r.StdErr);

        // the layer blob itself is what the file holds now (one read, digest computed over it)
        var blob = File.ReadAllBytes(Path.Combine(output, "blobs", "sha256", layer.Digest["sha256:".Length..]));
        Assert.Equal(layer.Digest, "sha256:" + Hex(blob));
        int at = blob.AsSpan().IndexOf(changed.AsSpan(0, 4096));
        Assert.True(at > 0 && blob.AsSpan(at, changed.Length).SequenceEqual(changed), "the layer holds the file's new bytes");
    }

    [Fact]
    public async Task A_touched_or_replaced_file_is_hashed_again_and_a_mismatch_fails_as_before()
    {
        var (dest, a, b) = await FetchAsync();
        var pathA = Path.Combine(dest, a.Path);
        var pathB = Path.Combine(dest, b.Path);

        // touched (mtime changed, same bytes): hashed again, the same sha256, the pack succeeds
        File.SetLastWriteTimeUtc(pathA, File.GetLastWriteTimeUtc(pathA).AddSeconds(5));
        var output = _dir.Combine("out");
        var r = await PackAsync(dest, output);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(a.Sha256, Layers(output)[$"/models/{a.Path}"].FileSha);
        Assert.Equal(b.Sha256, Layers(output)[$"/models/{b.Path}"].FileSha);

        // touched and rewritten: hashed, it no longer matches hf-fetch's record: one line naming both hashes
        var changed = TempDir.RandomBytes(a.Content.Length, 98);
        File.WriteAllBytes(pathA, changed);
        r = await PackAsync(dest, _dir.Combine("out2"));
        Assert.Equal(1, r.ExitCode);
        var error = Assert.Single(r.StdErr.Split('\n'), l => l.StartsWith("oci-pack: error:", StringComparison.Ordinal));
        Assert.Contains("does not match hf-fetch's verified record", error);
        Assert.Contains(Hex(changed), error);
        Assert.Contains(a.Sha256, error);
        File.WriteAllBytes(pathA, a.Content);

        // replaced by a copy with other bytes but the same size and mtime (a new inode): hashed, the mismatch fails
        var mtime = File.GetLastWriteTimeUtc(pathB);
        var copy = pathB + ".new";
        File.WriteAllBytes(copy, TempDir.RandomBytes(b.Content.Length, 97));
        File.SetLastWriteTimeUtc(copy, mtime);
        File.Move(copy, pathB, overwrite: true);
        Assert.Equal(mtime, File.GetLastWriteTimeUtc(pathB));
        r = await PackAsync(dest, _dir.Combine("out3"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("does not match hf-fetch's verified record", r.StdErr);
        Assert.Contains(b.Path, r.StdErr);
    }
}
