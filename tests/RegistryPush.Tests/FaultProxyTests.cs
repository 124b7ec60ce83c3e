using System.Collections.Concurrent;
using ModelCar.TestSupport;

namespace ModelCar.RegistryPush.Tests;

/// <summary>The registry-push side of <see cref="HtpasswdRegistryFixture"/>: what a successful push through a proxy leaves.</summary>
internal static class HtpasswdRegistryAssertions
{
    /// <summary>
    /// The push through <paramref name="proxy"/> succeeded and printed the manifest digest; the registry behind it
    /// serves that digest, skopeo pulls the image back intact, and the password is nowhere in the output.
    /// </summary>
    public static async Task AssertLandedAsync(this HtpasswdRegistryFixture fixture, string repo, TestImage image, ToolResult r, FaultProxy proxy, string workDir)
    {
        const string User = HtpasswdRegistryFixture.User, Password = HtpasswdRegistryFixture.Password;
        Assert.True(r.ExitCode == 0, r + "\n--- proxy ---\n" + string.Join("\n", proxy.Log));
        Assert.Equal($"{proxy.HostPort}/{repo}@{image.ManifestDigest}", r.StdOut.Trim());
        var creds = $"{User}:{Password}";
        Assert.Equal(image.ManifestDigest, await Skopeo.InspectDigestAsync($"{fixture.Registry.HostPort}/{repo}:v1", "--creds", creds));
        await Skopeo.AssertPullsBackAsync($"{fixture.Registry.HostPort}/{repo}:v1", image, workDir, "--src-creds", creds);
        Assert.DoesNotContain(Password, r.AllOutput);
    }
}

/// <summary>
/// A fault proxy between the published binary and the registry cuts connections mid-blob, answers
/// 503/429 bursts and one 401 in the middle of the push: the push completes with the same digest.
/// </summary>
public sealed class FaultProxyTests(HtpasswdRegistryFixture fixture) : IClassFixture<HtpasswdRegistryFixture>
{
    private static bool IsBlobHead(string m, string p) => m == "HEAD" && p.Contains("/blobs/sha256:", StringComparison.Ordinal);

    private static bool IsUpload(string m, string p) => p.Contains("/blobs/uploads/", StringComparison.Ordinal);

    private async Task<(ToolResult Result, FaultProxy Proxy, TestImage Image, TempDir Tmp)> PushThroughAsync(string repo, Func<int, string, string, Fault> decide, params string[] extra)
    {
        var tmp = new TempDir();
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(repo.Length + 40, (4 << 20) + (512 << 10), 3 << 20, 700));
        var proxy = await FaultProxy.StartAsync(fixture.Registry.BaseUri);
        proxy.Decide = decide;
        var passwordFile = tmp.WriteFile("password", HtpasswdRegistryFixture.Password);
        var r = await PushTests.Push(["--source", $"oci:{image.LayoutPath}:v1", "--dest", $"docker://{proxy.HostPort}/{repo}:v1", "--tls-verify=false",
            "--username", HtpasswdRegistryFixture.User, "--password-file", passwordFile, "--retries", "6", .. extra]);
        return (r, proxy, image, tmp);
    }

    /// <summary>
    /// The default upload is POST, one streamed PATCH body, PUT ?digest= (the copy engine's writer; it was POST + one PUT
    /// carrying the body): the cuts hit the request that carries the body, now the PATCH, and the blob's commit (PUT) gets a 503.
    /// </summary>
    [Fact]
    public async Task Monolithic_push_survives_cuts_503_429_bursts_and_a_mid_push_401()
    {
        int heads = 0, posts = 0, patches = 0, puts = 0, manifestHeads = 0;
        var (r, proxy, image, tmp) = await PushThroughAsync("fault/mono", (_, m, p) =>
        {
            if (IsBlobHead(m, p))
            {
                return Interlocked.Increment(ref heads) <= 2 ? Fault.Unavailable : Fault.Forward;
            }
            if (m == "POST" && IsUpload(m, p))
            {
                return Interlocked.Increment(ref posts) == 1 ? Fault.TooMany : Fault.Forward;
            }
            if (m == "PATCH" && IsUpload(m, p))
            {
                // PATCH 1 is the config's; 2 and 3 carry the 4.5 MiB layer (--jobs 1: in order)
                return Interlocked.Increment(ref patches) switch { 2 => Fault.CutBeforeForward, 3 => Fault.CutMidForward, _ => Fault.Forward };
            }
            if (m == "PUT" && IsUpload(m, p))
            {
                return Interlocked.Increment(ref puts) == 1 ? Fault.Unavailable : Fault.Forward;
            }
            if (m == "HEAD" && p.Contains("/manifests/", StringComparison.Ordinal))
            {
                return Interlocked.Increment(ref manifestHeads) == 1 ? Fault.Unauthorized : Fault.Forward;
            }
            return Fault.Forward;
        }, "--jobs", "1");
        await using (proxy)
        using (tmp)
        {
            await fixture.AssertLandedAsync("fault/mono", image, r, proxy, tmp.Path);
            Assert.Contains("retry 1/6", r.StdErr);                       // 503 / 429 retried
            Assert.Contains("resuming from there", r.StdErr);              // the PATCH cut before forwarding: the session is empty, resumed at 0
            // cut inside its body: the registry keeps part (resumed at its offset) or kills the session (distribution 2.8: a new session)
            Assert.Matches("the registry has [1-9][0-9]* bytes, resuming from there|starting the blob again with a new session", r.StdErr);
            Assert.Contains("401 Unauthorized in the middle of the push; credentials re-read", r.StdErr);
            Assert.Contains(proxy.Log, l => l.Contains("cut before forwarding", StringComparison.Ordinal));
            Assert.Contains(proxy.Log, l => l.Contains("cut after forwarding", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task Chunked_push_resumes_from_the_registry_range_after_a_cut_resending_at_most_one_chunk()
    {
        int patches = 0, manifestHeads = 0;
        var (r, proxy, image, tmp) = await PushThroughAsync("fault/chunked", (_, m, p) =>
        {
            if (m == "PATCH")
            {
                return Interlocked.Increment(ref patches) switch { 2 => Fault.CutBeforeForward, 4 => Fault.Unavailable, _ => Fault.Forward };
            }
            if (m == "HEAD" && p.Contains("/manifests/", StringComparison.Ordinal))
            {
                return Interlocked.Increment(ref manifestHeads) == 1 ? Fault.Unauthorized : Fault.Forward;
            }
            return Fault.Forward;
        }, "--chunk-size", "1M", "--jobs", "1");
        await using (proxy)
        using (tmp)
        {
            await fixture.AssertLandedAsync("fault/chunked", image, r, proxy, tmp.Path);
            Assert.Contains("resuming from there", r.StdErr);
            Assert.DoesNotContain("starting the blob again", r.StdErr);
            // 4.5 MiB + 3 MiB in 1 MiB chunks = 5 + 3 chunks, + the 700-byte layer and the config in one PATCH each
            // (they went in a PUT body before the copy engine): each reached the registry exactly once
            Assert.Equal(10, proxy.Log.Count(l => l.StartsWith("PATCH", StringComparison.Ordinal) && l.EndsWith("-> 202", StringComparison.Ordinal)));
            Assert.Contains("401 Unauthorized in the middle of the push; credentials re-read", r.StdErr);
        }
    }

    [Theory]
    [InlineData(Fault.Unavailable)]
    [InlineData(Fault.CutBeforeForward)]
    public async Task Chunked_push_recovers_when_the_first_patch_of_every_blob_fails(Fault fault)
    {
        // the session is still empty, so the registry answers the status GET with "Range: 0-0"
        var sessions = new ConcurrentDictionary<string, byte>();
        var repo = $"fault/first-{fault.ToString().ToLowerInvariant()}";
        var (r, proxy, image, tmp) = await PushThroughAsync(repo, (_, m, p) =>
            m == "PATCH" && sessions.TryAdd(p[(p.LastIndexOf('/') + 1)..], 0) ? fault : Fault.Forward,
            "--chunk-size", "1M", "--jobs", "1");
        await using (proxy)
        using (tmp)
        {
            await fixture.AssertLandedAsync(repo, image, r, proxy, tmp.Path);
            Assert.Equal(4, sessions.Count); // every blob's first PATCH failed (two chunked layers, the small layer and the config: one streamed PATCH each)
            Assert.Contains("the registry has 0 bytes, resuming from there", r.StdErr);
            Assert.DoesNotContain("starting the blob again", r.StdErr);
            Assert.Equal(10, proxy.Log.Count(l => l.StartsWith("PATCH", StringComparison.Ordinal) && l.EndsWith("-> 202", StringComparison.Ordinal)));
        }
    }

    [Fact]
    public async Task Chunked_push_restarts_a_blob_whose_session_the_registry_killed()
    {
        int patches = 0;
        var (r, proxy, image, tmp) = await PushThroughAsync("fault/dead", (_, m, _) =>
            m == "PATCH" && Interlocked.Increment(ref patches) == 3 ? Fault.CutMidForward : Fault.Forward,
            "--chunk-size", "1M", "--jobs", "1");
        await using (proxy)
        using (tmp)
        {
            await fixture.AssertLandedAsync("fault/dead", image, r, proxy, tmp.Path);
            Assert.True(r.StdErr.Contains("resuming from there", StringComparison.Ordinal) || r.StdErr.Contains("starting the blob again", StringComparison.Ordinal), r.StdErr);
        }
    }
}
