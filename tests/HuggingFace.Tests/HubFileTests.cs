using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using ModelCar.Common.Http;
using ModelCar.HuggingFace;
using ModelCar.TestSupport;

namespace ModelCar.HuggingFace.Tests;

/// <summary>HubFile, the one type that reads a Hub file at a commit from any offset (hf-fetch and oci-pack --model hf://).</summary>
public sealed class HubFileTests : IAsyncDisposable
{
    private readonly FakeHub _hub = new();

    public ValueTask DisposeAsync() => _hub.DisposeAsync();

    private (HubFile File, HttpClient Http) Open(FakeRepo repo, FakeFile f)
    {
        var settings = new HttpSettings { TlsVerify = true, MaxRetries = 3, RetryBaseDelay = TimeSpan.FromMilliseconds(1) };
        var http = HttpClientFactory.Create(settings);
        var client = new HubClient(http, _hub.Endpoint, "hf_tok", settings, NullLogger.Instance);
        var entry = new TreeEntry
        {
            Type = "file",
            Path = f.Path,
            Oid = f.GitOid,
            Size = f.Content.Length,
            Lfs = f.Lfs ? new LfsInfo { Oid = f.Sha256, Size = f.Content.Length } : null,
        };
        return (HubFile.At(client, RepoType.Model, repo.Id, repo.Commit, FilePlan.From(entry, "/x"), NullLogger.Instance), http);
    }

    private static async Task<byte[]> ReadAll(Stream s)
    {
        var ms = new MemoryStream();
        await s.CopyToAsync(ms);
        return ms.ToArray();
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public async Task Reads_from_any_offset_through_cuts_and_an_ignored_Range_with_the_token_never_at_the_cdn(bool lfs, bool ignoreRange)
    {
        var repo = _hub.AddRepo("org/m");
        _hub.ValidTokens.Add("hf_tok");
        var f = repo.Add("w.bin", TempDir.RandomBytes(1 << 20, 7), lfs);
        _hub.IgnoreRange = ignoreRange;
        _hub.CutAfter = (_, nth) => nth <= 2 ? 200_000 : null; // the first two bodies break
        var (file, http) = Open(repo, f);
        using (http)
        {
            await using (var all = file.OpenAt(0))
            {
                Assert.Equal(f.Content, await ReadAll(all)); // verified against the listing's hash at the end
            }
            foreach (long offset in new long[] { 1, 300_001, f.Content.Length - 1, f.Content.Length })
            {
                await using var tail = file.OpenAt(offset);
                Assert.Equal(f.Content[(int)offset..], await ReadAll(tail));
            }
        }
        Assert.Empty(_hub.Violations);
    }

    [Fact]
    public async Task A_read_from_the_start_that_does_not_hash_to_the_listing_throws_with_both_hashes()
    {
        var repo = _hub.AddRepo("org/m");
        _hub.ValidTokens.Add("hf_tok");
        var f = repo.Add("w.bin", TempDir.RandomBytes(300_000, 8), lfs: true);
        _hub.Corrupt.Add(f.Path);
        var (file, http) = Open(repo, f);
        using (http)
        {
            await using var s = file.OpenAt(0);
            var e = await Assert.ThrowsAsync<HashMismatchException>(() => ReadAll(s));
            Assert.Contains(f.Sha256, e.Message);
            Assert.Equal(64, e.Actual.Length);
            Assert.NotEqual(f.Sha256, e.Actual);
        }
    }
}
