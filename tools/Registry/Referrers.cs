using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using ModelCar.Common.Logging;
using ModelCar.Oci;

namespace ModelCar.Registry;

/// <summary>Where a referrer was recorded: the registry's referrers API (it answered the PUT with <c>OCI-Subject</c>) or the referrers tag schema.</summary>
public enum ReferrersPath
{
    Api,
    TagSchema,
}

/// <summary>What <see cref="Referrers.PushAsync"/> did: the manifest pushed (by digest) and where the registry lists it.</summary>
public sealed record ReferrerPush(Digest Manifest, ReferrersPath Path, bool IndexUpdated);

/// <summary>One entry of a subject's referrers list, and where it was found.</summary>
public sealed record ReferrerEntry(Descriptor Descriptor, ReferrersPath FoundBy);

/// <summary>
/// OCI 1.1 referrers (distribution-spec "Listing Referrers", "Pushing Manifests with Subject",
/// "Referrers Tag Schema") on one repository, through <see cref="RegistryRepository"/>'s client:
/// <list type="bullet">
/// <item>push: the manifest (with <c>subject</c>) is PUT by its digest; a registry that answers with
/// <c>OCI-Subject</c> = the subject indexes it itself (quay ≥ 3.12); otherwise the image index at tag
/// <c>ALG-HEX</c> of the subject is fetched (404 = start empty; anything but an OCI index = failure),
/// the descriptor appended (artifactType, annotations copied) unless it is there already, foreign
/// entries and fields kept as they are, and the index PUT back and checked with a HEAD;</item>
/// <item>list: the referrers API (<c>GET /v2/NAME/referrers/DIGEST</c>, <c>Link</c> pages: at most
/// <see cref="MaxPages"/>, same origin and same path only) where it answers 200, united with the tag
/// schema's index (a registry that gained the API later still lists what went to the tag before).</item>
/// </list>
/// Every server-sent list is bounded (<see cref="OciJson.MaxManifestBytes"/> per page, <see cref="MaxEntries"/>
/// entries) and validated (an OCI index of manifests with sha256 digests); entries are only candidates:
/// a caller fetches each by digest and checks its <c>subject</c>.
/// </summary>
public sealed class Referrers(RegistryRepository repository, ILogger logger)
{
    public const int MaxPages = 16;
    public const int MaxEntries = 1024;
    public const string SubjectHeader = "OCI-Subject";

    public RegistryRepository Repository => repository;

    private string Where => $"{repository.Client.Registry}/{repository.Name}";

    /// <summary>The referrers tag schema's tag of <paramref name="subject"/>: <c>ALG-HEX</c>.</summary>
    public static string FallbackTag(Digest subject) => $"{subject.Algorithm}-{subject.Encoded}";

    /// <summary>PUTs <paramref name="manifest"/> (an OCI image manifest whose <c>subject</c> is <paramref name="subject"/>) by digest and makes it discoverable.</summary>
    public async Task<ReferrerPush> PushAsync(Digest subject, byte[] manifest, CancellationToken ct)
    {
        var parsed = OciJson.Deserialize(manifest, OciJson.Manifest, "referrer manifest");
        if (parsed.Subject is not { } s || !s.Digest.Matches(subject))
        {
            throw new ArgumentException("the referrer manifest's subject is not the subject given", nameof(manifest));
        }
        var digest = Digest.Sha256(manifest);
        var url = repository.Client.Url($"/v2/{repository.Name}/manifests/{digest}");
        string? subjectHeader;
        using (var response = await repository.Client.SendAsync(() =>
        {
            var body = new ByteArrayContent(manifest);
            body.Headers.ContentType = new MediaTypeHeaderValue(MediaTypes.ImageManifest);
            return new HttpRequestMessage(HttpMethod.Put, url) { Content = body };
        }, repository.PushScope, ct).ConfigureAwait(false))
        {
            if (response.StatusCode is not (HttpStatusCode.Created or HttpStatusCode.OK or HttpStatusCode.Accepted))
            {
                throw await RegistryErrors.ToExceptionAsync(response, ct).ConfigureAwait(false);
            }
            RegistryRepository.CheckReportedDigest(response, digest, $"PUT {Redactor.Url(url)}");
            subjectHeader = response.Headers.TryGetValues(SubjectHeader, out var v) ? v.FirstOrDefault() : null;
        }
        await repository.VerifyManifestAsync(Where, digest.ToString(), new Descriptor { MediaType = MediaTypes.ImageManifest, Digest = digest, Size = manifest.Length }, manifest, ct).ConfigureAwait(false);
        if (subjectHeader is { Length: > 0 })
        {
            if (Digest.TryParse(subjectHeader.Trim(), out var said) && said.Matches(subject))
            {
                logger.LogDebug("{Where}: referrer {Digest} of {Subject} indexed by the registry (OCI-Subject)", Where, digest, subject);
                return new ReferrerPush(digest, ReferrersPath.Api, false);
            }
            logger.LogWarning("{Where}: the registry answered the referrer PUT with OCI-Subject {Said}, not {Subject}: keeping the referrers tag too", Where, subjectHeader, subject);
        }
        var descriptor = new Descriptor
        {
            MediaType = MediaTypes.ImageManifest,
            Digest = digest,
            Size = manifest.Length,
            ArtifactType = parsed.ArtifactType ?? parsed.Config.MediaType,
            Annotations = parsed.Annotations,
        };
        bool updated = await AddToFallbackIndexAsync(subject, descriptor, ct).ConfigureAwait(false);
        return new ReferrerPush(digest, ReferrersPath.TagSchema, updated);
    }

    /// <summary>Appends <paramref name="entry"/> to the index at the subject's fallback tag (unless an entry has its digest); false when it was there.</summary>
    private async Task<bool> AddToFallbackIndexAsync(Digest subject, Descriptor entry, CancellationToken ct)
    {
        var tag = FallbackTag(subject);
        JsonObject index;
        var existing = await ReadFallbackIndexAsync(subject, forPush: true, ct).ConfigureAwait(false);
        if (existing is null)
        {
            index = new JsonObject
            {
                ["schemaVersion"] = 2,
                ["mediaType"] = MediaTypes.ImageIndex,
                ["manifests"] = new JsonArray(),
            };
        }
        else
        {
            index = existing.Value.Raw;
            if (existing.Value.Entries.Any(e => e.Digest.Matches(entry.Digest)))
            {
                logger.LogDebug("{Where}: {Tag} already lists {Digest}", Where, tag, entry.Digest);
                return false;
            }
            if (existing.Value.Entries.Count >= MaxEntries)
            {
                throw new RegistryException($"{Where}: the referrers index at tag {tag} has {existing.Value.Entries.Count} entries, at most {MaxEntries} are kept: not adding another");
            }
        }
        var manifests = (JsonArray)index["manifests"]!;
        manifests.Add(JsonNode.Parse(OciJson.Serialize(entry, DescriptorInfo)));
        var content = System.Text.Encoding.UTF8.GetBytes(index.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
        if (content.Length > OciJson.MaxManifestBytes)
        {
            throw new RegistryException($"{Where}: the referrers index at tag {tag} would be {content.Length} bytes, more than {OciJson.MaxManifestBytes}");
        }
        var pushed = await repository.PutManifestAsync(tag, MediaTypes.ImageIndex, content, ct).ConfigureAwait(false);
        await repository.VerifyManifestAsync(Where, tag, new Descriptor { MediaType = MediaTypes.ImageIndex, Digest = pushed, Size = content.Length }, content, ct).ConfigureAwait(false);
        logger.LogDebug("{Where}: {Tag} now lists {Count} referrer(s)", Where, tag, manifests.Count);
        return true;
    }

    private static System.Text.Json.Serialization.Metadata.JsonTypeInfo<Descriptor> DescriptorInfo =>
        (System.Text.Json.Serialization.Metadata.JsonTypeInfo<Descriptor>)OciJson.Options.GetTypeInfo(typeof(Descriptor));

    /// <summary>The index at the fallback tag (raw, to keep what we do not model, and its entries), or null when the tag does not exist.</summary>
    /// <param name="forPush">True when the index is read to be appended to (push scope); false for a reader, which asks pull scope only.</param>
    private async Task<(JsonObject Raw, IReadOnlyList<Descriptor> Entries)?> ReadFallbackIndexAsync(Digest subject, bool forPush, CancellationToken ct)
    {
        var tag = FallbackTag(subject);
        if (await repository.ManifestDigestAsync(tag, ct, forPush ? null : repository.PullScope).ConfigureAwait(false) is null)
        {
            return null;
        }
        var (descriptor, content) = await repository.GetManifestAsync(tag, ct).ConfigureAwait(false); // bounded to OciJson.MaxManifestBytes
        if (descriptor.MediaType != MediaTypes.ImageIndex)
        {
            throw new RegistryException($"{Where}: tag {tag} (the referrers tag schema's tag of {subject}) holds a {descriptor.MediaType}, not an OCI image index: not touching it");
        }
        var entries = ParseIndex(content, $"{Where}: the referrers index at tag {tag}");
        JsonObject raw;
        try
        {
            raw = JsonNode.Parse(content) as JsonObject ?? throw new RegistryException($"{Where}: the referrers index at tag {tag} is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new RegistryException($"{Where}: the referrers index at tag {tag} is not JSON: {e.Message}", e);
        }
        if (raw["manifests"] is not JsonArray)
        {
            raw["manifests"] = new JsonArray();
        }
        return (raw, entries);
    }

    /// <summary>
    /// The referrers of <paramref name="subject"/> (optionally only those of <paramref name="artifactType"/>): the referrers
    /// API's list where the registry has it, and the tag schema's index, without duplicates.
    /// </summary>
    public async Task<IReadOnlyList<ReferrerEntry>> ListAsync(Digest subject, string? artifactType, CancellationToken ct)
    {
        var result = new List<ReferrerEntry>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        void Add(Descriptor d, ReferrersPath path)
        {
            if ((artifactType is null || d.ArtifactType == artifactType) && seen.Add(d.Digest.ToString()))
            {
                if (result.Count >= MaxEntries)
                {
                    throw new RegistryException($"{Where}: more than {MaxEntries} referrers of {subject}");
                }
                result.Add(new ReferrerEntry(d, path));
            }
        }
        foreach (var d in await ListFromApiAsync(subject, artifactType, ct).ConfigureAwait(false) ?? [])
        {
            Add(d, ReferrersPath.Api);
        }
        if (await ReadFallbackIndexAsync(subject, forPush: false, ct).ConfigureAwait(false) is { } index)
        {
            foreach (var d in index.Entries)
            {
                Add(d, ReferrersPath.TagSchema);
            }
        }
        return result;
    }

    /// <summary>The referrers API's list, following <c>Link: &lt;…&gt;; rel="next"</c>; null when the registry has no referrers API (404, 400, 405, 501).</summary>
    public async Task<IReadOnlyList<Descriptor>?> ListFromApiAsync(Digest subject, string? artifactType, CancellationToken ct)
    {
        var path = $"/v2/{repository.Name}/referrers/{subject}";
        var url = repository.Client.Url(path);
        if (artifactType is not null)
        {
            url = RegistryClient.WithQuery(url, "artifactType", artifactType);
        }
        var all = new List<Descriptor>();
        for (int page = 0; ; page++)
        {
            if (page >= MaxPages)
            {
                throw new RegistryException($"{Where}: the referrers list of {subject} goes on past {MaxPages} pages: not followed further");
            }
            var current = url;
            using var response = await repository.Client.SendAsync(() =>
            {
                var r = new HttpRequestMessage(HttpMethod.Get, current);
                r.Headers.TryAddWithoutValidation("Accept", MediaTypes.ImageIndex);
                return r;
            }, repository.PullScope, ct).ConfigureAwait(false);
            if (page == 0 && response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.BadRequest or HttpStatusCode.MethodNotAllowed or HttpStatusCode.NotImplemented)
            {
                logger.LogDebug("{Where}: no referrers API ({Status}): the referrers tag schema is used", Where, (int)response.StatusCode);
                return null;
            }
            if (response.StatusCode != HttpStatusCode.OK)
            {
                throw await RegistryErrors.ToExceptionAsync(response, ct).ConfigureAwait(false);
            }
            if (response.Content.Headers.ContentLength is > OciJson.MaxManifestBytes)
            {
                throw new RegistryException($"GET {Redactor.Url(current)}: a referrers page larger than {OciJson.MaxManifestBytes} bytes");
            }
            var content = await ReadBoundedAsync(response, current, ct).ConfigureAwait(false);
            var entries = ParseIndex(content, $"{Where}: the referrers list of {subject}");
            if (all.Count + entries.Count > MaxEntries)
            {
                throw new RegistryException($"{Where}: more than {MaxEntries} referrers of {subject}");
            }
            all.AddRange(entries);
            if (NextLink(response, current) is not { } next)
            {
                return all;
            }
            // only the same list, on the same origin: credentials go with it
            if (!repository.Client.IsOwnOrigin(next) || next.AbsolutePath != repository.Client.Url(path).AbsolutePath)
            {
                throw new RegistryException($"{Where}: the referrers list of {subject} points its next page elsewhere ({Redactor.Url(next)}): not followed");
            }
            url = next;
        }
    }

    private static async Task<byte[]> ReadBoundedAsync(HttpResponseMessage response, Uri url, CancellationToken ct)
    {
        await using var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int n;
        while ((n = await stream.ReadAsync(chunk, ct).ConfigureAwait(false)) > 0)
        {
            buffer.Write(chunk, 0, n);
            if (buffer.Length > OciJson.MaxManifestBytes)
            {
                throw new RegistryException($"GET {Redactor.Url(url)}: a referrers page larger than {OciJson.MaxManifestBytes} bytes");
            }
        }
        return buffer.ToArray();
    }

    /// <summary><c>Link: &lt;URL&gt;; rel="next"</c> resolved against the request URL, or null.</summary>
    public static Uri? NextLink(HttpResponseMessage response, Uri current)
    {
        if (!response.Headers.TryGetValues("Link", out var values))
        {
            return null;
        }
        foreach (var value in values.SelectMany(v => v.Split(',')))
        {
            int open = value.IndexOf('<', StringComparison.Ordinal), close = value.IndexOf('>', StringComparison.Ordinal);
            if (open < 0 || close <= open)
            {
                continue;
            }
            var parameters = value[(close + 1)..].Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            if (parameters.Any(p => p.Replace(" ", "", StringComparison.Ordinal) is "rel=\"next\"" or "rel=next")
                && Uri.TryCreate(current, value[(open + 1)..close], out var next))
            {
                return next;
            }
        }
        return null;
    }

    /// <summary>An OCI image index whose entries are manifests or indexes with valid digests; throws a <see cref="RegistryException"/> naming <paramref name="what"/> otherwise.</summary>
    private static IReadOnlyList<Descriptor> ParseIndex(byte[] content, string what)
    {
        ImageIndex index;
        try
        {
            index = OciJson.Deserialize(content, OciJson.Index, what);
        }
        catch (InvalidDataException e)
        {
            throw new RegistryException($"{what} is not an OCI image index: {e.Message}", e);
        }
        if (index.MediaType is { } mt && mt != MediaTypes.ImageIndex)
        {
            throw new RegistryException($"{what} is a {mt}, not an OCI image index");
        }
        if (index.Manifests.Count > MaxEntries)
        {
            throw new RegistryException($"{what} has {index.Manifests.Count} entries (at most {MaxEntries} are read)");
        }
        foreach (var d in index.Manifests)
        {
            if (d.Size is < 0 or > OciJson.MaxManifestBytes)
            {
                throw new RegistryException($"{what}: an entry with a size of {d.Size} bytes");
            }
        }
        return index.Manifests;
    }
}
