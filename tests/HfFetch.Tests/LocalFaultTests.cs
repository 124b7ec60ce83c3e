using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using ModelCar.TestSupport;

namespace ModelCar.HfFetch.Tests;

/// <summary>Issue 10's local-file fault paths of hf-fetch: symlinks in DIR, concurrent runs, long names, corrupt bodies.</summary>
public sealed partial class ToolTests
{
    private static string Sha(byte[] b) => Convert.ToHexStringLower(SHA256.HashData(b));

    [Fact]
    public async Task A_symlink_already_in_dest_never_leads_a_write_outside_it()
    {
        var elsewhere = _dir.Combine("elsewhere");
        Directory.CreateDirectory(elsewhere);
        Directory.CreateDirectory(Dest);
        Directory.CreateSymbolicLink(Path.Combine(Dest, "sub"), elsewhere);
        var repo = _hub.AddRepo("org/linked");
        repo.Add("ok.txt", [1, 2, 3]);
        repo.Add("sub/pwned.txt", "pwned"u8.ToArray());
        repo.Add("sub/deep/pwned.bin", TempDir.RandomBytes(100_000, 9), lfs: true);
        var r = await RunAsync(Args(repo.Id));
        Assert.Equal(1, r.ExitCode);
        var line = ErrorLine(r);
        Assert.Contains("refusing", line);
        Assert.Contains("symbolic link", line);
        Assert.Empty(Directory.EnumerateFileSystemEntries(elsewhere));
        Assert.Empty(_hub.Resolves); // refused while planning, before any transfer

        // a symlink to somewhere inside DIR resolves inside it: allowed
        Directory.Delete(Path.Combine(Dest, "sub"));
        Directory.CreateDirectory(Path.Combine(Dest, "real"));
        Directory.CreateSymbolicLink(Path.Combine(Dest, "sub"), Path.Combine(Dest, "real"));
        var inside = await RunAsync(Args(repo.Id));
        Assert.True(inside.ExitCode == 0, inside.ToString());
        Assert.Equal("pwned", File.ReadAllText(Path.Combine(Dest, "real", "pwned.txt")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(elsewhere));
    }

    [Fact]
    public async Task A_second_run_into_the_same_dest_waits_for_the_first()
    {
        var repo = _hub.AddRepo("org/shared");
        var big = repo.Add("model.safetensors", TempDir.RandomBytes(12 << 20, 11), lfs: true);
        repo.Add("config.json", "{}"u8.ToArray());
        _hub.ThrottleBytesPerSecond = 2 << 20; // per connection: ~1.5 s with 4 chunks
        using var first = ToolRunner.Start(Tool, Args(repo.Id, "--chunk-size", "3M"), Env());
        var clock = Stopwatch.StartNew();
        while (_hub.Served(big.Path) < (1 << 20) && !first.HasExited && clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(20);
        }
        Assert.False(first.HasExited, "the first run finished before the second started");
        var second = await RunAsync(Args(repo.Id, "--chunk-size", "3M"));
        await first.WaitForExitAsync();
        Assert.True(first.ExitCode == 0, await first.StandardError.ReadToEndAsync());
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Contains("waiting", second.StdErr);
        Assert.Equal(big.Content.Length, _hub.Served(big.Path)); // one copy served: the second run found it verified
        AssertSnapshot(repo);
    }

    [Fact]
    public async Task With_a_lock_timeout_a_second_run_fails_with_one_line()
    {
        var repo = StandardRepo(big: 100_000);
        var lockFile = Path.Combine(Dest, ".hf-fetch", "lock");
        Directory.CreateDirectory(Path.GetDirectoryName(lockFile)!);
        using (var held = LockContention.Hold(lockFile))
        {
            var r = await RunAsync(Args(repo.Id, "--lock-timeout", "1"));
            Assert.Equal(1, r.ExitCode);
            var line = ErrorLine(r);
            Assert.Contains("another run", line);
            Assert.Contains("--lock-timeout", line);
            Assert.Empty(_hub.Requests);

            // without a timeout it waits, says so, and goes on once the lock is free
            var waiting = RunAsync(Args(repo.Id));
            await LockContention.AssertWaitsUntilReleasedAsync(held, waiting);
        }
        AssertSnapshot(repo);
    }

    [Fact]
    public async Task Names_of_250_bytes_download_and_old_partials_still_resume()
    {
        var repo = _hub.AddRepo("org/long");
        var longGit = repo.Add(new string('g', 246) + ".txt", "small"u8.ToArray());
        var longLfs = repo.Add("sub/" + new string('l', 242) + ".bin", TempDir.RandomBytes(300_000, 12), lfs: true);
        var resumable = repo.Add("resumable.safetensors", TempDir.RandomBytes(4 << 20, 13), lfs: true);
        Assert.Equal(250, Encoding.UTF8.GetByteCount(longGit.Path));

        // a partial download in the state format of earlier versions (incomplete/PATH.incomplete + .json)
        var legacy = Path.Combine(Dest, ".hf-fetch", "incomplete", resumable.Path + ".incomplete");
        Directory.CreateDirectory(Path.GetDirectoryName(legacy)!);
        var partial = new byte[resumable.Content.Length];
        Array.Copy(resumable.Content, partial, 3 << 20);
        File.WriteAllBytes(legacy, partial);
        File.WriteAllText(legacy + ".json",
            $$"""{"commit":"{{repo.Commit}}","hash":"{{resumable.Sha256}}","size":{{resumable.Content.Length}},"chunkSize":{{resumable.Content.Length}},"written":[{{3 << 20}}]}""");

        var r = await RunAsync(Args(repo.Id, "--chunk-size", "8M"));
        Assert.True(r.ExitCode == 0, r.ToString());
        AssertSnapshot(repo);
        Assert.Contains("resuming", r.StdErr);
        Assert.Equal(1 << 20, _hub.Served(resumable.Path));
        Assert.False(File.Exists(legacy));
    }

    [Fact]
    public async Task One_corrupt_body_is_fetched_again_from_a_new_signed_url_over_a_new_connection()
    {
        var repo = StandardRepo(big: 3 << 20);
        var big = repo.Files[4];
        var git = repo.Files[3];
        _hub.CorruptOnce.Add(big.Path);
        _hub.CorruptOnce.Add(git.Path);
        var r = await RunAsync(Args(repo.Id, "--chunk-size", "1M"));
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("mismatch", r.StdErr);
        Assert.Contains("once more", r.StdErr);
        AssertSnapshot(repo);
        // fetched again after resolving again: a second /resolve/ and another signed CDN URL
        Assert.Equal(2, _hub.Requests.Count(q => q.Port == _hub.HubPort && q.RawTarget.Contains("/resolve/", StringComparison.Ordinal) && q.RawTarget.EndsWith("/" + big.Path, StringComparison.Ordinal)));
        var signed = _hub.Requests.Where(q => q.Port == _hub.CdnPort && q.RawTarget.Contains(big.Sha256, StringComparison.Ordinal))
            .Select(q => q.RawTarget[q.RawTarget.IndexOf('?')..]).Distinct().Count();
        Assert.True(signed >= 2, $"{signed} signed URL(s) used");
        // ... over new connections, not the pooled ones that delivered the bad bytes
        Assert.Empty(_hub.OnOldConnectionsFrom(big, 2));
        Assert.Empty(_hub.OnOldConnectionsFrom(git, 2));
    }

    [Fact]
    public async Task A_body_corrupt_twice_fails_naming_both_hashes_and_leaves_no_file()
    {
        var repo = StandardRepo(big: 3 << 20);
        var big = repo.Files[4];
        _hub.Corrupt.Add(big.Path);
        var r = await RunAsync(Args(repo.Id, "--chunk-size", "1M"));
        Assert.Equal(1, r.ExitCode);
        var line = ErrorLine(r);
        Assert.Contains(big.Path, line);
        Assert.Contains("expected " + big.Sha256, line);
        var bad = (byte[])big.Content.Clone();
        for (int i = 0; i < bad.Length; i += 4096)
        {
            bad[i] ^= 0xFF;
        }
        Assert.Contains("got " + Sha(bad), line);
        Assert.Equal(2, _hub.Requests.Count(q => q.Port == _hub.HubPort && q.RawTarget.Contains("/resolve/", StringComparison.Ordinal) && q.RawTarget.EndsWith("/" + big.Path, StringComparison.Ordinal)));
        Assert.False(File.Exists(Path.Combine(Dest, big.Path)));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(Dest, ".hf-fetch"), "*.incomplete*", SearchOption.AllDirectories));
        Assert.False(File.Exists(Path.Combine(Dest, ".hf-fetch", "snapshot.json")));
    }
}
