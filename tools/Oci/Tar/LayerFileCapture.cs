namespace ModelCar.Oci.Tar;

/// <summary>
/// The bytes of chosen small files of a <see cref="TarLayer"/>, taken from the layer's own bytes as they go by (fed
/// in order from offset 0, like <see cref="LayerFileHasher"/>), so a file the pack needs to look into (the model's
/// config.json) is not read a second time, from disk or from the Hub. Only files of at most
/// <c>maxBytes</c> are kept: memory stays bounded whatever the layer holds.
/// </summary>
public sealed class LayerFileCapture
{
    private readonly List<(LayerEntry Entry, long Offset, byte[] Buffer)> _files;
    private readonly Dictionary<string, byte[]> _result = new(StringComparer.Ordinal);
    private long _position;
    private int _current;

    /// <param name="tarPaths">The tar paths of the files to keep (others and larger ones are ignored).</param>
    public LayerFileCapture(TarLayer layer, IReadOnlySet<string> tarPaths, long maxBytes)
    {
        _files = [.. layer.Files.Where(f => f.Entry.Kind == LayerEntryKind.File && f.Entry.Size <= maxBytes && tarPaths.Contains(f.Entry.TarPath))
            .Select(f => (f.Entry, f.Offset, new byte[f.Entry.Size]))];
    }

    /// <summary>Whether the layer holds a file to keep (if not, it need not be fed).</summary>
    public bool IsNeeded => _files.Count > 0;

    /// <summary>The layer bytes that follow the ones appended so far.</summary>
    public void Append(ReadOnlySpan<byte> data)
    {
        long end = _position + data.Length;
        while (_current < _files.Count)
        {
            var (entry, offset, buffer) = _files[_current];
            long fileEnd = offset + entry.Size;
            if (offset > end || (offset == end && entry.Size > 0))
            {
                break;
            }
            long from = Math.Max(offset, _position);
            long to = Math.Min(fileEnd, end);
            if (to > from)
            {
                data.Slice((int)(from - _position), (int)(to - from)).CopyTo(buffer.AsSpan((int)(from - offset)));
            }
            if (to < fileEnd)
            {
                break;
            }
            _result[entry.TarPath] = buffer;
            _current++;
        }
        _position = end;
    }

    /// <summary>Tar path → content of each kept file whose last byte went by.</summary>
    public IReadOnlyDictionary<string, byte[]> Result => _result;
}
