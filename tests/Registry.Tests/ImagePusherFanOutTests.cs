using System.Collections.Concurrent;
using Microsoft.Extensions.Logging.Abstractions;
using ModelCar.Common.Http;
using ModelCar.Oci;
using ModelCar.Oci.Layout;
using ModelCar.Registry;
using ModelCar.Registry.Auth;
using ModelCar.TestSupport;

namespace ModelCar.Registry.Tests;

/// <summary>
/// registry-push on the one copy engine: a blob is read from the source once for every destination that needs its
/// bytes (one RegistryBlobWriter each, fed by BlobFanOut), and a source blob whose bytes do not match its digest
/// commits nothing anywhere. Two in-memory registries on two ports = two hosts (no cross-host mount possible).
/// </summary>
public sealed class ImagePusherFanOutTests
{
    private static readonly HttpSettings Settings = new() { TlsVerify = false, MaxRetries = 1, RetryBaseDelay = TimeSpan.FromMilliseconds(10) };

    /// <summary>Counts the opens of each blob and every byte read from the source.</summary>
    private sealed class CountingSource(IImageSource inner) : IImageSource
    {
        private long _read;

        public ConcurrentDictionary<Digest, int> Opens { get; } = new();

        public long Read => Interlocked.Read(ref _read);

        public string Description => inner.Description;

        public Descriptor ResolveRoot(string? reference) => inner.ResolveRoot(reference);

        public Stream OpenBlob(Descriptor descriptor)
        {
            Opens.AddOrUpdate(descriptor.Digest, 1, (_, n) => n + 1);
            return new Counting(inner.OpenBlob(descriptor), this);
        }

        public void Reset()
        {
            Opens.Clear();
            Interlocked.Exchange(ref _read, 0);
        }

        public void Dispose() => inner.Dispose();

        private sealed class Counting(Stream stream, CountingSource owner) : ModelCar.Common.IO.ReadOnlyWrapperStream(stream)
        {
            public override int Read(Span<byte> buffer) => Count(Inner.Read(buffer));

            public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
                Count(await Inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false));

            private int Count(int n)
            {
                Interlocked.Add(ref owner._read, n);
                return n;
            }
        }
    }

    private static async Task<int> StatusOf(HttpClient http, HostileRegistry registry, string path)
    {
        using var response = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"http://{registry.HostPort}{path}"));
        return (int)response.StatusCode;
    }

    private static (RegistryReference, RegistryClient) Destination(HttpClient http, HostileRegistry registry, string repository)
    {
        var reference = RegistryReference.Parse($"{registry.HostPort}/{repository}:v1");
        return (reference, new RegistryClient(reference.Registry, http, Settings, new AnonymousCredentialProvider(), NullLogger.Instance) { AuthRepository = reference.Repository });
    }

    [Theory]
    [InlineData(null)]
    [InlineData(1L << 20)] // chunked: PATCHes with Content-Range to both, still one read
    public async Task Two_destinations_on_two_hosts_are_fed_from_one_read_of_each_blob(long? chunkSize)
    {
        await using var a = await HostileRegistry.StartAsync();
        await using var b = await HostileRegistry.StartAsync();
        using var tmp = new TempDir();
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(301, (5 << 20) / 2, 70_000, 3_000_000));
        using var source = new CountingSource(OciLayout.Open(image.LayoutPath));
        var root = source.ResolveRoot("v1");
        var pusher = new ImagePusher(source, root, new UploadOptions { ChunkSize = chunkSize }, jobs: 4, NullLogger.Instance, progress: null);
        source.Reset(); // the manifest walk above reads the manifest: count the blob transfers only
        using var http = HttpClientFactory.Create(Settings);

        var results = await pusher.PushAsync([Destination(http, a, "fan/a"), Destination(http, b, "fan/b")], CancellationToken.None);

        Assert.All(results, r => Assert.Equal(pusher.Blobs.Count, r.Uploaded));
        Assert.All(results, r => Assert.Equal(pusher.TotalBlobBytes, r.UploadedBytes));
        Assert.True(a.HasManifest("fan/a", "v1"));
        Assert.True(b.HasManifest("fan/b", "v1"));
        // every blob opened once and read once, for both registries together
        Assert.Equal(pusher.Blobs.Select(d => d.Digest.ToString()).Order(StringComparer.Ordinal), source.Opens.Keys.Select(d => d.ToString()).Order(StringComparer.Ordinal));
        Assert.All(source.Opens, o => Assert.Equal(1, o.Value));
        Assert.Equal(pusher.TotalBlobBytes, source.Read);
        // and each registry received every byte (and committed each blob once, with PUT ?digest=)
        foreach (var registry in new[] { a, b })
        {
            Assert.Equal(pusher.Blobs.Count, registry.Requests.Count(r => r.Method == "PUT" && r.Target.Contains("digest=", StringComparison.Ordinal)));
        }

        // a re-push reads nothing: every blob is present (HEAD) on both
        source.Reset();
        var again = await pusher.PushAsync([Destination(http, a, "fan/a"), Destination(http, b, "fan/b")], CancellationToken.None);
        Assert.All(again, r => Assert.Equal(pusher.Blobs.Count, r.Present));
        Assert.Empty(source.Opens);
    }

    [Theory]
    [InlineData(null)]
    [InlineData(1L << 20)]
    public async Task A_source_blob_whose_bytes_do_not_match_its_digest_commits_nothing_in_any_destination(long? chunkSize)
    {
        await using var a = await HostileRegistry.StartAsync();
        await using var b = await HostileRegistry.StartAsync();
        using var tmp = new TempDir();
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(302, 3_000_000));
        var layer = image.Layers[0];
        // same size, other bytes: only the digest can tell (the last byte: every other byte has already gone out)
        var damaged = layer.Content.ToArray();
        damaged[^1] ^= 0xff;
        File.WriteAllBytes(Path.Combine(image.LayoutPath, "blobs", "sha256", layer.Digest["sha256:".Length..]), damaged);
        using var source = OciLayout.Open(image.LayoutPath);
        var pusher = new ImagePusher(source, source.ResolveRoot("v1"), new UploadOptions { ChunkSize = chunkSize }, jobs: 4, NullLogger.Instance, progress: null);
        using var http = HttpClientFactory.Create(Settings);

        var e = await Assert.ThrowsAsync<DigestMismatchException>(() => pusher.PushAsync([Destination(http, a, "bad/a"), Destination(http, b, "bad/b")], CancellationToken.None));

        Assert.Contains(layer.Digest, e.Message);
        foreach (var registry in new[] { a, b })
        {
            // the bytes went out (streamed PATCH) to both, but no PUT ?digest= of the damaged blob followed anywhere
            Assert.Contains(registry.Requests, r => r.Method == "PATCH");
            Assert.DoesNotContain(registry.Requests, r => r.Method == "PUT" && r.Target.Contains(layer.Digest["sha256:".Length..], StringComparison.Ordinal));
            Assert.Equal(404, await StatusOf(http, registry, $"/v2/{(registry == a ? "bad/a" : "bad/b")}/blobs/{layer.Digest}"));
            Assert.False(registry.HasManifest(registry == a ? "bad/a" : "bad/b", "v1"));
        }
    }
}
