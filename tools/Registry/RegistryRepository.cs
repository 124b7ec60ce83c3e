using System.Net;
using System.Net.Http.Headers;
using ModelCar.Common;
using ModelCar.Common.Http;
using ModelCar.Common.Logging;
using Microsoft.Extensions.Logging;
using ModelCar.Oci;

namespace ModelCar.Registry;

/// <summary>
/// Blob and manifest operations on one repository (distribution-spec endpoints). Every answer is
/// checked; unexpected ones become <see cref="HttpFailureException"/> with the server's error code.
/// </summary>
public sealed class RegistryRepository(RegistryClient client, string repository)
{
    public RegistryClient Client => client;

    public string Name => repository;

    public string PushScope => RegistryClient.PushScope(repository);

    public string PullScope => RegistryClient.PullScope(repository);

    private Uri BlobUrl(Digest digest) => client.Url($"/v2/{repository}/blobs/{digest}");

    private Uri ManifestUrl(string reference) => client.Url($"/v2/{repository}/manifests/{reference}");

    public Uri UploadsUrl => client.Url($"/v2/{repository}/blobs/uploads/");

    /// <summary>HEAD the blob: true if the registry has it in this repository.</summary>
    public async Task<bool> BlobExistsAsync(Digest digest, CancellationToken ct, string? scope = null)
    {
        var url = BlobUrl(digest);
        using var response = await client.SendAsync(() => new HttpRequestMessage(HttpMethod.Head, url), scope ?? PushScope, ct).ConfigureAwait(false);
        return response.StatusCode switch
        {
            HttpStatusCode.OK => true,
            HttpStatusCode.NotFound => false,
            _ => throw await RegistryErrors.ToExceptionAsync(response, ct).ConfigureAwait(false),
        };
    }

    /// <summary>
    /// HEAD the blob and trust a 200 only when it proves the blob is the one meant: Content-Length must be
    /// <paramref name="size"/>, and a Docker-Content-Digest, if sent, must be <paramref name="digest"/>
    /// (a server answering 200 to everything, or one holding other bytes, does not count as "present").
    /// False (the blob is then sent) when it does not; the reason is logged.
    /// </summary>
    public async Task<bool> HasBlobAsync(Digest digest, long size, CancellationToken ct)
    {
        var url = BlobUrl(digest);
        using var response = await client.SendAsync(() => new HttpRequestMessage(HttpMethod.Head, url), PushScope, ct).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw await RegistryErrors.ToExceptionAsync(response, ct).ConfigureAwait(false);
        }
        string? why = null;
        if (response.Content.Headers.ContentLength is not { } length)
        {
            why = "no Content-Length";
        }
        else if (length != size)
        {
            why = $"Content-Length {length}, not {size}";
        }
        else if (response.Headers.TryGetValues("Docker-Content-Digest", out var values) && values.FirstOrDefault() is { Length: > 0 } reported
            && !(Digest.TryParse(reported, out var d) && d.Matches(digest)))
        {
            why = $"Docker-Content-Digest {reported}";
        }
        if (why is null)
        {
            return true;
        }
        client.Logger.LogWarning("{Registry}/{Repository}: HEAD of blob {Digest} answered 200 with {Why}: not trusted, sending the blob",
            client.Registry, repository, digest, why);
        return false;
    }

    /// <summary>
    /// After a push: HEAD the manifest by <paramref name="reference"/> (its digest, or the tag) and check the registry
    /// serves exactly <paramref name="content"/> (Docker-Content-Digest and Content-Length). A registry that sends
    /// neither header is asked with a GET and the bytes compared. Throws a <see cref="RegistryException"/> naming
    /// <paramref name="destination"/> and what was wrong.
    /// </summary>
    public async Task VerifyManifestAsync(string destination, string reference, Descriptor manifest, byte[] content, CancellationToken ct)
    {
        var url = ManifestUrl(reference);
        string? why;
        using (var response = await client.SendAsync(() =>
        {
            var r = new HttpRequestMessage(HttpMethod.Head, url);
            r.Headers.TryAddWithoutValidation("Accept", MediaTypes.ManifestAccept);
            return r;
        }, PushScope, ct).ConfigureAwait(false))
        {
            if (response.StatusCode != HttpStatusCode.OK)
            {
                why = $"HEAD answered {(int)response.StatusCode} {response.ReasonPhrase}";
            }
            else
            {
                var reported = response.Headers.TryGetValues("Docker-Content-Digest", out var v) ? v.FirstOrDefault() : null;
                long? length = response.Content.Headers.ContentLength;
                if (!string.IsNullOrEmpty(reported) && !(Digest.TryParse(reported, out var d) && d.Matches(manifest.Digest)))
                {
                    why = $"it serves digest {reported}";
                }
                else if (length is { } n && n != content.Length)
                {
                    why = $"it serves {n} bytes, not {content.Length}";
                }
                else if (string.IsNullOrEmpty(reported) || length is null)
                {
                    why = await CompareByGetAsync(reference, content, ct).ConfigureAwait(false);
                }
                else
                {
                    why = null;
                }
            }
        }
        if (why is not null)
        {
            throw new RegistryException($"{destination}: after the push the registry does not serve manifest {manifest.Digest} as {reference}: {why}");
        }
    }

    private async Task<string?> CompareByGetAsync(string reference, byte[] content, CancellationToken ct)
    {
        try
        {
            var (_, served) = await GetManifestAsync(reference, ct).ConfigureAwait(false);
            return served.AsSpan().SequenceEqual(content) ? null : $"GET returns other bytes ({served.Length} bytes, {Digest.Sha256(served)})";
        }
        catch (Exception e) when (e is ModelCarException or HttpRequestException)
        {
            return "GET failed: " + ErrorText.Describe(e);
        }
    }

    /// <summary>The upload endpoints of this repository (start, mount, status, chunk, complete, cancel).</summary>
    public BlobUploadOperations Uploads => new(this, client.Logger);

    /// <summary>POST a new upload session (forwards to <see cref="BlobUploadOperations.StartAsync"/>).</summary>
    public Task<UploadSession> StartUploadAsync(CancellationToken ct) => Uploads.StartAsync(ct);

    /// <summary>Cross-repository mount (forwards to <see cref="BlobUploadOperations.MountAsync"/>).</summary>
    public Task<MountResult> MountAsync(Digest digest, string fromRepository, CancellationToken ct) => Uploads.MountAsync(digest, fromRepository, ct);

    /// <summary>HEAD a manifest: its digest if the reference exists, null on 404. <paramref name="scope"/>: <see cref="PullScope"/> for a reader (a verifier); push scope by default (a pusher's check).</summary>
    public async Task<Digest?> ManifestDigestAsync(string reference, CancellationToken ct, string? scope = null)
    {
        var url = ManifestUrl(reference);
        using var response = await client.SendAsync(() =>
        {
            var r = new HttpRequestMessage(HttpMethod.Head, url);
            r.Headers.TryAddWithoutValidation("Accept", MediaTypes.ManifestAccept);
            return r;
        }, scope ?? PushScope, ct).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw await RegistryErrors.ToExceptionAsync(response, ct).ConfigureAwait(false);
        }
        return response.Headers.TryGetValues("Docker-Content-Digest", out var v) && Digest.TryParse(v.FirstOrDefault(), out var d) ? d : null;
    }

    /// <summary>PUT a manifest or index with its media type; checks the digest the registry reports.</summary>
    public async Task<Digest> PutManifestAsync(string reference, string mediaType, byte[] content, CancellationToken ct)
    {
        var url = ManifestUrl(reference);
        var expected = Digest.Sha256(content);
        using var response = await client.SendAsync(() =>
        {
            var body = new ByteArrayContent(content);
            body.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
            return new HttpRequestMessage(HttpMethod.Put, url) { Content = body };
        }, PushScope, ct).ConfigureAwait(false);
        if (response.StatusCode is not (HttpStatusCode.Created or HttpStatusCode.OK or HttpStatusCode.Accepted))
        {
            throw await RegistryErrors.ToExceptionAsync(response, ct).ConfigureAwait(false);
        }
        CheckReportedDigest(response, expected, $"PUT {Redactor.Url(url)}");
        return expected;
    }

    /// <summary>GET a manifest or index: its descriptor (media type from Content-Type) and bytes, verified when addressed by digest.</summary>
    public async Task<(Descriptor Descriptor, byte[] Content)> GetManifestAsync(string reference, CancellationToken ct)
    {
        var url = ManifestUrl(reference);
        using var response = await client.GetFollowingRedirectsAsync(url, PullScope, MediaTypes.ManifestAccept, ct).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            var hint = response.StatusCode == HttpStatusCode.NotFound ? $"no image {client.Registry}/{repository}:{reference}" : null;
            throw await RegistryErrors.ToExceptionAsync(response, ct, hint).ConfigureAwait(false);
        }
        if (response.Content.Headers.ContentLength is > OciJson.MaxManifestBytes)
        {
            throw new RegistryException($"GET {Redactor.Url(url)}: manifest larger than {OciJson.MaxManifestBytes} bytes");
        }
        var bytes = await response.Content.ReadAsByteArrayAsync(ct).ConfigureAwait(false);
        if (bytes.Length > OciJson.MaxManifestBytes)
        {
            throw new RegistryException($"GET {Redactor.Url(url)}: manifest larger than {OciJson.MaxManifestBytes} bytes");
        }
        var digest = Digest.Sha256(bytes);
        if (Digest.TryParse(reference, out var requested) && !requested.Matches(digest))
        {
            throw new DigestMismatchException($"GET {Redactor.Url(url)}: content digest {digest} does not match {requested}");
        }
        var mediaType = response.Content.Headers.ContentType?.MediaType;
        if (!MediaTypes.IsManifestOrIndex(mediaType))
        {
            mediaType = OciJson.DetectMediaType(bytes);
        }
        return (new Descriptor { MediaType = mediaType!, Digest = digest, Size = bytes.Length }, bytes);
    }

    /// <summary>GET a blob (following redirects; no credentials to other hosts). The caller verifies it.</summary>
    public async Task<Stream> OpenBlobAsync(Digest digest, CancellationToken ct)
    {
        var url = BlobUrl(digest);
        var response = await client.GetFollowingRedirectsAsync(url, PullScope, null, ct).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            var hint = response.StatusCode == HttpStatusCode.NotFound ? $"blob {digest} is not in {client.Registry}/{repository}" : null;
            throw await RegistryErrors.ToExceptionAsync(response, ct, hint).ConfigureAwait(false);
        }
        var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        var stall = client.Settings.StallTimeout;
        return new ModelCar.Common.IO.StallTimeoutStream(new ResponseOwningStream(stream, response), stall, $"no data from {Redactor.Url(url)} for {stall.TotalSeconds:0} s (timeout)");
    }

    internal static void CheckReportedDigest(HttpResponseMessage response, Digest expected, string what)
    {
        if (response.Headers.TryGetValues("Docker-Content-Digest", out var values) && values.FirstOrDefault() is { Length: > 0 } reported)
        {
            if (!Digest.TryParse(reported, out var d) || !d.Matches(expected))
            {
                throw new DigestMismatchException($"{what}: the registry reports digest {reported}, expected {expected}");
            }
        }
    }

    private sealed class ResponseOwningStream(Stream inner, HttpResponseMessage response) : ModelCar.Common.IO.ReadOnlyWrapperStream(inner)
    {
        public override int Read(Span<byte> buffer) => Inner.Read(buffer);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => Inner.ReadAsync(buffer, cancellationToken);


        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                response.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
