using Microsoft.Extensions.Logging;
using ModelCar.Oci;
using ModelCar.Oci.Tar;
using ModelCar.Registry;

namespace ModelCar.Packing;
/// <summary>
/// All docker:// outputs. Model layers stream during the one read to the first destination of each
/// registry host (<see cref="RegistryBlobWriter"/>: POST, streamed PATCH, PUT ?digest=). At commit
/// the existing <see cref="ImagePusher"/> pushes the whole image to every destination from a
/// <see cref="PackedImageSource"/>: HEAD first (the streamed layers are there), cross-repository
/// mounts on one host (it is told where the streamed layers went), base blobs streamed through
/// from the base image once per host, model layers recorded from an earlier run but missing
/// regenerated from the model files (verified), config, then the manifest last with its
/// Docker-Content-Digest checked.
/// </summary>
public sealed class RegistryTarget(IReadOnlyList<(RegistryReference Reference, RegistryClient Client)> destinations, UploadOptions upload, int jobs,
    IImageSource? baseSource, ILogger logger, (string Host, string Repository)? baseRepository = null) : IImageTarget
{
    private readonly List<Digest> _baseBlobs = [];
    private readonly Dictionary<Digest, byte[]> _small = [];
    private readonly Dictionary<Digest, IRereadableBlob> _layers = [];
    private readonly List<(string Host, Digest Digest, string Repository)> _streamed = [];
    private readonly object _lock = new();

    /// <summary>The first destination of each host: where model layers are streamed.</summary>
    private IEnumerable<(RegistryReference Reference, RegistryClient Client)> Streamed =>
        destinations.GroupBy(d => d.Client.Registry, StringComparer.OrdinalIgnoreCase).Select(g => g.First());

    public string Description => string.Join(", ", destinations.Select(d => $"docker://{d.Reference}"));

    public IReadOnlyList<PushResult> Results { get; private set; } = [];

    /// <summary>Base blobs are sent by the pusher at commit; a base on a destination's host is mounted from its repository.</summary>
    public IReadOnlyList<IBlobWriter> OpenBaseBlob(Descriptor blob)
    {
        lock (_lock)
        {
            _baseBlobs.Add(blob.Digest);
        }
        return [];
    }

    public async Task<IReadOnlyList<IBlobWriter>> OpenLayerAsync(int index, TarLayer layer, Digest? known, CancellationToken ct)
    {
        if (known is not null)
        {
            return []; // the pusher HEADs it, and regenerates it only where it is missing
        }
        var writers = new List<IBlobWriter>();
        try
        {
            foreach (var (reference, client) in Streamed)
            {
                await client.PingAsync(ct).ConfigureAwait(false);
                var repository = new RegistryRepository(client, reference.Repository);
                writers.Add(await RegistryBlobWriter.OpenAsync(repository, layer, upload, logger, ct,
                    what: $"layer upload to {client.Registry}/{reference.Repository}").ConfigureAwait(false));
            }
        }
        catch
        {
            foreach (var w in writers)
            {
                await w.DisposeAsync().ConfigureAwait(false);
            }
            throw;
        }
        return writers;
    }

    public void LayerDone(int index, Descriptor descriptor, TarLayer layer, bool streamed)
    {
        lock (_lock)
        {
            _layers[descriptor.Digest] = layer;
            if (streamed)
            {
                foreach (var (reference, client) in Streamed)
                {
                    _streamed.Add((client.Registry, descriptor.Digest, reference.Repository));
                }
            }
        }
    }

    public void AddSmallBlob(byte[] content, Descriptor descriptor)
    {
        lock (_lock)
        {
            _small[descriptor.Digest] = content;
        }
    }

    public async Task CommitAsync(Descriptor manifest, CancellationToken ct)
    {
        var source = new PackedImageSource(manifest, _small, _layers, baseSource);
        var pusher = new ImagePusher(source, manifest, upload, jobs, logger, null);
        foreach (var (host, digest, repository) in _streamed)
        {
            pusher.AddKnownLocation(host, digest, repository);
        }
        if (baseRepository is { } b)
        {
            foreach (var digest in _baseBlobs)
            {
                pusher.AddKnownLocation(b.Host, digest, b.Repository); // only used where a destination shares the base's host
            }
        }
        Results = await pusher.PushAsync(destinations, ct).ConfigureAwait(false);
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

/// <summary>
/// The packed image as an <see cref="IImageSource"/> without a copy on disk: config and manifest
/// from memory, model layers regenerated from the model files, base blobs from the base image.
/// </summary>
public sealed class PackedImageSource(Descriptor root, IReadOnlyDictionary<Digest, byte[]> small, IReadOnlyDictionary<Digest, IRereadableBlob> layers, IImageSource? baseSource) : IImageSource
{
    public string Description => "the packed image";

    public Descriptor ResolveRoot(string? reference) => root;

    public Stream OpenBlob(Descriptor descriptor)
    {
        if (small.TryGetValue(descriptor.Digest, out var content))
        {
            return new MemoryStream(content, writable: false);
        }
        if (layers.TryGetValue(descriptor.Digest, out var layer))
        {
            return layer.OpenAt(0);
        }
        return baseSource?.OpenBlob(descriptor) ?? throw new BlobNotFoundException($"blob {descriptor.Digest} is not part of the packed image");
    }

    public void Dispose()
    {
    }
}
