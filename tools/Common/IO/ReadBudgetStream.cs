namespace ModelCar.Common.IO;

/// <summary>
/// Bytes a reader may still take from a server across several answers (the pages of one listing): every
/// <see cref="ReadBudgetStream"/> sharing it draws from it, and the read that would go past it throws the
/// exception <see cref="Exceeded"/> makes (one line naming what was read), so memory stays bounded whatever the
/// server sends.
/// </summary>
public sealed class ReadBudget(long limit, Func<ReadBudget, Exception> exceeded)
{
    private long _used;

    public long Limit { get; } = limit;

    /// <summary>Bytes taken so far.</summary>
    public long Used => Interlocked.Read(ref _used);

    internal void Take(int n)
    {
        if (Interlocked.Add(ref _used, n) > Limit)
        {
            throw exceeded(this);
        }
    }

    /// <summary>Wraps <paramref name="inner"/>: its reads count against this budget.</summary>
    public Stream Wrap(Stream inner) => new ReadBudgetStream(inner, this);
}

/// <summary>A read-only stream whose reads count against a <see cref="ReadBudget"/>.</summary>
public sealed class ReadBudgetStream(Stream inner, ReadBudget budget) : ReadOnlyWrapperStream(inner)
{
    public override int Read(Span<byte> buffer)
    {
        int n = Inner.Read(buffer);
        budget.Take(n);
        return n;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        int n = await Inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        budget.Take(n);
        return n;
    }
}
