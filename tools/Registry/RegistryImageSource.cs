using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using ModelCar.Common.Http;
using ModelCar.Oci;
using ModelCar.Registry.Auth;

namespace ModelCar.Registry;

/// <summary>
/// An image in a registry as an <see cref="IImageSource"/> (pull side, e.g. a base image for oci-pack):
/// the tag or digest resolves to the manifest or index descriptor (Accept: OCI + Docker types),
/// blobs are fetched by digest with authorization, redirects followed by hand without credentials
/// on other hosts. Callers verify with <see cref="ImageSourceExtensions.OpenVerified"/>.
/// </summary>
public sealed class RegistryImageSource : IImageSource
{
    private readonly RegistryRepository _repository;
    private readonly RegistryReference _reference;
    private readonly HttpClient? _ownedHttp;
    private readonly ConcurrentDictionary<Digest, byte[]> _manifests = new();

    public RegistryImageSource(RegistryClient client, RegistryReference reference, HttpClient? ownedHttp = null)
    {
        _reference = reference;
        _repository = new RegistryRepository(client, reference.Repository);
        _ownedHttp = ownedHttp;
        if (client.AuthRepository.Length == 0)
        {
            client.AuthRepository = reference.Repository;
        }
    }

    /// <summary>A source with its own HTTP client (TLS settings, retries) and credential lookup.</summary>
    public static RegistryImageSource Create(RegistryReference reference, HttpSettings settings, ICredentialProvider credentials, ILogger logger)
    {
        var http = HttpClientFactory.Create(settings);
        var client = new RegistryClient(reference.Registry, http, settings, credentials, logger) { AuthRepository = reference.Repository };
        return new RegistryImageSource(client, reference, http);
    }

    public string Description => $"docker://{_reference}";

    public RegistryReference Reference => _reference;

    public RegistryRepository Repository => _repository;

    /// <summary>The manifest or index for the reference's tag/digest (or <paramref name="reference"/> if given).</summary>
    public Descriptor ResolveRoot(string? reference) => ResolveRootAsync(reference, CancellationToken.None).GetAwaiter().GetResult();

    public async Task<Descriptor> ResolveRootAsync(string? reference, CancellationToken ct)
    {
        await _repository.Client.PingAsync(ct).ConfigureAwait(false);
        var (descriptor, content) = await _repository.GetManifestAsync(reference ?? _reference.ManifestReference, ct).ConfigureAwait(false);
        _manifests[descriptor.Digest] = content;
        return descriptor;
    }

    public Stream OpenBlob(Descriptor descriptor) => OpenBlobAsync(descriptor, CancellationToken.None).GetAwaiter().GetResult();

    public async Task<Stream> OpenBlobAsync(Descriptor descriptor, CancellationToken ct)
    {
        if (_manifests.TryGetValue(descriptor.Digest, out var cached))
        {
            return new MemoryStream(cached, writable: false);
        }
        await _repository.Client.PingAsync(ct).ConfigureAwait(false);
        if (MediaTypes.IsManifestOrIndex(descriptor.MediaType))
        {
            var (_, content) = await _repository.GetManifestAsync(descriptor.Digest.ToString(), ct).ConfigureAwait(false);
            _manifests[descriptor.Digest] = content;
            return new MemoryStream(content, writable: false);
        }
        return await _repository.OpenBlobAsync(descriptor.Digest, ct).ConfigureAwait(false);
    }

    public void Dispose() => _ownedHttp?.Dispose();
}
