using System.Security.Cryptography;

namespace ModelCar.Oci.Tar;

/// <summary>
/// The sha256 of each file in a <see cref="TarLayer"/>, from the layer's own bytes: fed the layer
/// stream in order from offset 0 (the buffers the one read hashes and sends anyway), it hashes the
/// bytes of each file segment (<see cref="TarLayer.Files"/>), so no file is read a second time.
/// Files whose sha256 is known already (<c>known</c>) are not hashed: their bytes are skipped.
/// </summary>
public sealed class LayerFileHasher : IDisposable
{
    private readonly IReadOnlyList<(LayerEntry Entry, long Offset)> _files;
    private readonly Action<LayerEntry, string>? _onFile;
    private readonly Func<LayerEntry, string?>? _known;
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly Dictionary<string, string> _result = new(StringComparer.Ordinal);
    private long _position;
    private int _current;

    /// <param name="onFile">Called with each hashed file's sha256 (hex) as soon as its last byte went by (it may throw to stop the read).</param>
    /// <param name="known">A file's sha256 (hex) when it is known without hashing (e.g. a downloader's verified record), else null.</param>
    public LayerFileHasher(TarLayer layer, Action<LayerEntry, string>? onFile = null, Func<LayerEntry, string?>? known = null)
    {
        _files = layer.Files;
        _onFile = onFile;
        _known = known;
    }

    /// <summary>Whether <see cref="LayerFileHasher(TarLayer, Action{LayerEntry, string}?, Func{LayerEntry, string?}?)"/>'s layer has
    /// a file to hash; if not, <see cref="Result"/> is complete at once and the layer bytes need not be fed.</summary>
    public static bool NeedsBytes(TarLayer layer, Func<LayerEntry, string?>? known) =>
        known is null || layer.Files.Any(f => known(f.Entry) is null);

    /// <summary>The known hashes alone, for a layer whose every file is known (<see cref="NeedsBytes"/> false).</summary>
    public static IReadOnlyDictionary<string, string> KnownOnly(TarLayer layer, Func<LayerEntry, string?> known) =>
        layer.Files.ToDictionary(f => f.Entry.TarPath, f => known(f.Entry) ?? throw new InvalidOperationException($"{f.Entry.TarPath}: no known sha256"), StringComparer.Ordinal);

    /// <summary>The layer bytes that follow the ones appended so far.</summary>
    public void Append(ReadOnlySpan<byte> data)
    {
        long end = _position + data.Length;
        while (_current < _files.Count)
        {
            var (entry, offset) = _files[_current];
            long fileEnd = offset + entry.Size;
            if (offset > end || (offset == end && entry.Size > 0))
            {
                break;
            }
            long from = Math.Max(offset, _position);
            long to = Math.Min(fileEnd, end);
            var known = _known?.Invoke(entry);
            if (to > from && known is null)
            {
                _hash.AppendData(data.Slice((int)(from - _position), (int)(to - from)));
            }
            if (to < fileEnd)
            {
                break;
            }
            if (known is not null)
            {
                _result[entry.TarPath] = known;
                _current++;
                continue;
            }
            var sha = Convert.ToHexStringLower(_hash.GetHashAndReset());
            _result[entry.TarPath] = sha;
            _current++;
            _onFile?.Invoke(entry, sha);
        }
        _position = end;
    }

    /// <summary>Tar path → sha256 (64 lowercase hex digits) of every file; only once the whole layer went by.</summary>
    public IReadOnlyDictionary<string, string> Result => _current == _files.Count
        ? _result
        : throw new InvalidOperationException($"file hashes asked for after {_position} bytes of the layer, before its last file ended");

    public void Dispose() => _hash.Dispose();
}
