using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using ModelCar.Common.Http;
using ModelCar.Oci;
using ModelCar.Registry;
using ModelCar.Registry.Auth;
using ModelCar.TestSupport;

namespace ModelCar.Registry.Tests;

/// <summary>
/// RegistryBlobWriter's protocol against an in-process fake registry (HttpMessageHandler level):
/// streamed and chunked PATCH bodies fed by WriteAsync, resume from Range after cuts by re-reading
/// the blob, dead sessions, 503/429 bursts, a 401 mid-push, DIGEST_INVALID and abandon → DELETE.
/// </summary>
public sealed class BlobWriterTests
{
    private static readonly HttpSettings Settings = new() { TlsVerify = true, MaxRetries = 3, RetryBaseDelay = TimeSpan.FromMilliseconds(1), StallTimeout = TimeSpan.FromSeconds(20) };

    private static RegistryRepository Repository(FakeUploadRegistry fake, ICredentialProvider? credentials = null)
    {
        var http = HttpClientFactory.Create(Settings, fake);
        var client = new RegistryClient("reg.example", http, Settings, credentials ?? new AnonymousCredentialProvider(), NullLogger.Instance) { AuthRepository = "org/model" };
        client.UseBaseUri(new Uri("https://reg.example/"));
        return new RegistryRepository(client, "org/model");
    }

    private static UploadOptions Options(long? chunk = null, int maxRecoveries = 5) =>
        new() { ChunkSize = chunk, MaxRecoveries = maxRecoveries, RetryBaseDelay = TimeSpan.FromMilliseconds(1) };

    /// <summary>Pushes <paramref name="data"/> in writes of <paramref name="writeSize"/> bytes (the producer), then commits.</summary>
    private static async Task<RegistryBlobWriter> PushAsync(FakeUploadRegistry fake, byte[] data, UploadOptions options, int writeSize = 777,
        ICredentialProvider? credentials = null, MemoryBlob? blob = null, Digest? digest = null)
    {
        var repo = Repository(fake, credentials);
        var writer = await RegistryBlobWriter.OpenAsync(repo, blob ?? new MemoryBlob(data), options, NullLogger.Instance, CancellationToken.None);
        await using (writer)
        {
            for (int i = 0; i < data.Length; i += writeSize)
            {
                await writer.WriteAsync(data.AsMemory(i, Math.Min(writeSize, data.Length - i)), CancellationToken.None);
            }
            await writer.CommitAsync(digest ?? Digest.Sha256(data), CancellationToken.None);
        }
        return writer;
    }

    private static string[] Patches(FakeUploadRegistry fake) => fake.Log.Where(l => l.StartsWith("PATCH", StringComparison.Ordinal)).ToArray();

    [Fact]
    public async Task A_blob_below_the_chunk_threshold_goes_in_one_streamed_patch_then_a_put_with_an_empty_body()
    {
        var fake = new FakeUploadRegistry { MinChunk = 4000 };
        var data = TempDir.RandomBytes(300_000, 1);
        var writer = await PushAsync(fake, data, Options(), writeSize: 65536);
        Assert.Equal(data, fake.Final);
        Assert.Equal(1, fake.Posts);
        Assert.Equal(["PATCH /v2/org/model/blobs/uploads/s1"], Patches(fake)); // no Content-Range: a streamed body
        Assert.Equal([0L], fake.PutBodyLengths);
        Assert.Equal(data.Length, fake.Received);
        Assert.Equal(0, writer.RereadBytes);
        Assert.Empty(fake.Deletes); // committed: disposing deletes nothing
    }

    [Fact]
    public async Task Chunked_patches_carry_inclusive_content_ranges_and_honour_the_minimum_chunk_length()
    {
        var fake = new FakeUploadRegistry { MinChunk = 4000 };
        var data = TempDir.RandomBytes(10_000, 2);
        await PushAsync(fake, data, Options(chunk: 3000));
        Assert.Equal(data, fake.Final);
        Assert.Equal(["0-3999", "4000-7999", "8000-9999"], Patches(fake).Select(p => p.Split(' ')[2]));
        Assert.Equal(data.Length, fake.Received);
    }

    [Theory]
    [InlineData(null)]
    [InlineData(40_000L)]
    public async Task A_cut_patch_resumes_from_the_registry_range_and_resends_only_the_bytes_it_lost(long? chunk)
    {
        // the first cut keeps half of what was sent (the registry says so in Range), the second keeps nothing
        var fake = new FakeUploadRegistry { Decide = (m, n) => m == "PATCH" ? n switch { 1 => UploadFault.CutKeep, 2 => UploadFault.CutDrop, _ => UploadFault.None } : UploadFault.None };
        var data = TempDir.RandomBytes(200_000, 3);
        var blob = new MemoryBlob(data);
        var writer = await PushAsync(fake, data, Options(chunk), writeSize: 5000, blob: blob);
        var log = string.Join("\n", fake.Log);
        Assert.Equal(data, fake.Final);
        Assert.Equal(1, fake.Posts);
        Assert.Equal(1, writer.Sessions);
        Assert.Equal(2, writer.Recoveries);
        Assert.Equal(2, fake.Log.Count(l => l.StartsWith("GET", StringComparison.Ordinal))); // asked for the Range after each cut
        // the registry kept every byte once; bytes sent twice are only those it lost (half of each cut body at most)
        long lost = fake.Received - data.Length;
        long firstBody = chunk ?? data.Length;
        Assert.True(lost > 0 && lost <= firstBody / 2, log);
        Assert.True(writer.BodyBytes >= fake.Received, $"{writer.BodyBytes} < {fake.Received}");
        Assert.True(writer.RereadBytes <= lost, $"re-read {writer.RereadBytes}, lost {lost}\n{log}");
        Assert.All(blob.Opened, o => Assert.True(o > 0)); // re-read from the registry's offset, never from 0
    }

    [Fact]
    public async Task A_session_the_registry_killed_restarts_this_blob_alone_from_byte_zero()
    {
        var fake = new FakeUploadRegistry { Decide = (m, n) => m == "PATCH" && n == 2 ? UploadFault.CutKill : UploadFault.None };
        var data = TempDir.RandomBytes(100_000, 4);
        var blob = new MemoryBlob(data);
        var writer = await PushAsync(fake, data, Options(chunk: 30_000), blob: blob);
        Assert.Equal(data, fake.Final);
        Assert.Equal(2, fake.Posts);
        Assert.Equal(2, writer.Sessions);
        Assert.Contains(0L, blob.Opened); // everything sent so far was read again from the blob
        Assert.Contains(fake.Log, l => l.StartsWith("PATCH /v2/org/model/blobs/uploads/s2 0-29999", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Bursts_of_503_and_429_on_post_patch_and_put_are_waited_out()
    {
        var fake = new FakeUploadRegistry
        {
            Decide = (m, n) => (m, n) switch
            {
                ("POST", 1) => UploadFault.Status503,
                ("PATCH", 1 or 2) => UploadFault.Status503,
                ("PATCH", 4) => UploadFault.Status429,
                ("PUT", 1) => UploadFault.Status429,
                ("PUT", 2) => UploadFault.Status503,
                _ => UploadFault.None,
            },
        };
        var data = TempDir.RandomBytes(50_000, 5);
        var writer = await PushAsync(fake, data, Options(chunk: 20_000));
        Assert.Equal(data, fake.Final);
        Assert.Equal(1, fake.Posts);
        Assert.Equal(data.Length, fake.Received); // the failed requests were answered before their bodies were read
        Assert.Equal(0, writer.RereadBytes);
    }

    [Fact]
    public async Task Failures_beyond_the_recovery_budget_fail_the_blob_as_transient_and_delete_the_session()
    {
        var fake = new FakeUploadRegistry { Decide = (m, _) => m == "PATCH" ? UploadFault.Status503 : UploadFault.None };
        var data = TempDir.RandomBytes(10_000, 6);
        var e = await Assert.ThrowsAsync<BlobUploadException>(() => PushAsync(fake, data, Options(maxRecoveries: 2)));
        Assert.True(e.IsTransient);
        Assert.Contains("failed 3 times in a row at byte 0 of 10000", e.Message);
        Assert.Contains("503", e.Message);
        Assert.Equal(3, Patches(fake).Length);
        Assert.Equal(["s1"], fake.Deletes);
    }

    [Fact]
    public async Task A_streamed_body_cut_more_often_than_the_budget_goes_on_while_the_registry_gets_further()
    {
        // four cuts, each after the registry kept more bytes: not a run of failures, though the budget is 2
        var fake = new FakeUploadRegistry { Decide = (m, n) => m == "PATCH" && n <= 4 ? UploadFault.CutKeep : UploadFault.None };
        var data = TempDir.RandomBytes(400_000, 14);
        var writer = await PushAsync(fake, data, Options(maxRecoveries: 2), writeSize: 10_000);
        Assert.Equal(data, fake.Final);
        Assert.Equal(4, writer.Recoveries);
        Assert.Equal(1, fake.Posts);
        Assert.Equal(data.Length, fake.Received); // each cut kept what it read: no byte went twice
    }

    [Fact]
    public async Task A_401_in_the_middle_of_a_patch_authenticates_again_and_resends_what_that_body_took()
    {
        using var tmp = new TempDir();
        var file = tmp.WriteFile("token", "pw-one-111\n");
        var fake = new FakeUploadRegistry { CurrentPassword = "pw-one-111" };
        int patches = 0;
        fake.Decide = (m, n) =>
        {
            if (m == "PATCH" && n == 2 && Interlocked.Increment(ref patches) == 1)
            {
                // the token rotates while the push runs: the registry now wants the new one
                File.WriteAllText(file, "pw-two-222\n");
                fake.CurrentPassword = "pw-two-222";
                return UploadFault.Unauthorized;
            }
            return UploadFault.None;
        };
        var data = TempDir.RandomBytes(90_000, 7);
        var writer = await PushAsync(fake, data, Options(chunk: 30_000), credentials: new ExplicitCredentialProvider("sa", null, file));
        Assert.Equal(data, fake.Final);
        Assert.Equal(1, fake.Posts);
        Assert.Equal(0, writer.Recoveries); // the client authenticated again and resent the same PATCH: no Range needed
        Assert.Equal(2, fake.Log.Count(l => l == "PATCH /v2/org/model/blobs/uploads/s1 30000-59999"));
        // the 401'd body took up to 15000 bytes out of the pipe: at most those were read again from the blob
        Assert.True(writer.RereadBytes <= 15_000, writer.RereadBytes.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(data.Length + 15_000, fake.Received);
    }

    [Fact]
    public async Task A_digest_the_registry_does_not_confirm_is_a_permanent_failure_in_one_line()
    {
        var fake = new FakeUploadRegistry();
        var data = TempDir.RandomBytes(20_000, 8);
        var wrong = Digest.Sha256([1, 2, 3]);
        var e = await Assert.ThrowsAsync<BlobUploadException>(() => PushAsync(fake, data, Options(), digest: wrong));
        Assert.False(e.IsTransient);
        Assert.Contains($"the registry computed another digest than {wrong}", e.Message);
        Assert.Contains("DIGEST_INVALID", e.Message);
        Assert.DoesNotContain("\n", e.Message);
        Assert.DoesNotContain("--", e.Message); // a library message: no CLI option names
        Assert.Single(fake.Log, l => l.StartsWith("PUT", StringComparison.Ordinal)); // not retried
        Assert.Equal(["s1"], fake.Deletes);
    }

    [Theory]
    [InlineData(null)]
    [InlineData(3000L)]
    public async Task Disposing_without_commit_deletes_the_session(long? chunk)
    {
        var fake = new FakeUploadRegistry();
        var data = TempDir.RandomBytes(10_000, 9);
        var repo = Repository(fake);
        await using (var writer = await RegistryBlobWriter.OpenAsync(repo, new MemoryBlob(data), Options(chunk), NullLogger.Instance, CancellationToken.None))
        {
            await writer.WriteAsync(data.AsMemory(0, 6500), CancellationToken.None);
        }
        Assert.Equal(["s1"], fake.Deletes);
        Assert.Empty(fake.Sessions);
        Assert.Null(fake.Final);
        Assert.DoesNotContain(fake.Log, l => l.StartsWith("PUT", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_slow_registry_holds_the_producer_back_instead_of_buffering_the_blob()
    {
        var fake = new FakeUploadRegistry { PauseAfter = 1 << 20 };
        var data = TempDir.RandomBytes(32 << 20, 10);
        var repo = Repository(fake);
        long pushed = 0;
        await using var writer = await RegistryBlobWriter.OpenAsync(repo, new MemoryBlob(data), Options(), NullLogger.Instance, CancellationToken.None);
        var producer = Task.Run(async () =>
        {
            for (int i = 0; i < data.Length; i += 256 << 10)
            {
                await writer.WriteAsync(data.AsMemory(i, 256 << 10), CancellationToken.None);
                Interlocked.Add(ref pushed, 256 << 10);
            }
        });
        await Task.Delay(700);
        long ahead = Interlocked.Read(ref pushed) - fake.Received;
        Assert.False(producer.IsCompleted);
        Assert.True(ahead <= RegistryBlobWriter.BufferLimit + (2 << 20), $"the producer got {ahead} bytes ahead of the registry");
        fake.Gate.Release();
        await producer;
        await writer.CommitAsync(Digest.Sha256(data), CancellationToken.None);
        Assert.Equal(data, fake.Final);
    }

    [Fact]
    public async Task A_registry_that_takes_the_whole_body_and_never_answers_is_asked_for_its_range_after_the_headers_timeout()
    {
        var fake = new FakeUploadRegistry { Decide = (m, n) => m == "PATCH" && n == 1 ? UploadFault.NoAnswer : UploadFault.None };
        var data = TempDir.RandomBytes(50_000, 13);
        var settings = Settings with { HeadersTimeout = TimeSpan.FromMilliseconds(300) };
        var http = HttpClientFactory.Create(settings, fake);
        var client = new RegistryClient("reg.example", http, settings, new AnonymousCredentialProvider(), NullLogger.Instance) { AuthRepository = "org/model" };
        client.UseBaseUri(new Uri("https://reg.example/"));
        var repo = new RegistryRepository(client, "org/model");
        await using var writer = await RegistryBlobWriter.OpenAsync(repo, new MemoryBlob(data), Options(), NullLogger.Instance, CancellationToken.None);
        await writer.WriteAsync(data, CancellationToken.None);
        await writer.CommitAsync(Digest.Sha256(data), CancellationToken.None);
        Assert.Equal(data, fake.Final);
        Assert.Equal(1, writer.Recoveries);
        Assert.Single(Patches(fake)); // the registry had every byte: nothing was sent again
        Assert.Equal(data.Length, fake.Received);
    }

    [Fact]
    public async Task Writing_past_the_declared_size_or_committing_early_is_refused()
    {
        var fake = new FakeUploadRegistry();
        var data = TempDir.RandomBytes(1000, 11);
        var repo = Repository(fake);
        await using (var writer = await RegistryBlobWriter.OpenAsync(repo, new MemoryBlob(data), Options(), NullLogger.Instance, CancellationToken.None))
        {
            await writer.WriteAsync(data.AsMemory(0, 500), CancellationToken.None);
            await Assert.ThrowsAsync<InvalidOperationException>(() => writer.CommitAsync(Digest.Sha256(data), CancellationToken.None));
        }
        await using (var writer = await RegistryBlobWriter.OpenAsync(repo, new MemoryBlob(data), Options(), NullLogger.Instance, CancellationToken.None))
        {
            await Assert.ThrowsAsync<InvalidOperationException>(async () => await writer.WriteAsync(new byte[1001], CancellationToken.None));
        }
        Assert.Equal(["s1", "s2"], fake.Deletes);
    }

    [Fact]
    public async Task A_session_the_registry_forgot_before_the_first_patch_is_started_again()
    {
        var fake = new FakeUploadRegistry();
        var data = TempDir.RandomBytes(1000, 12);
        var repo = Repository(fake);
        await using var writer = await RegistryBlobWriter.OpenAsync(repo, new MemoryBlob(data), Options(), NullLogger.Instance, CancellationToken.None);
        fake.Sessions.Clear(); // the registry forgot the session before the first PATCH: that is a dead session, restarted
        await writer.WriteAsync(data, CancellationToken.None);
        await writer.CommitAsync(Digest.Sha256(data), CancellationToken.None);
        Assert.Equal(2, fake.Posts);
        Assert.Equal(data, fake.Final);
    }
}
