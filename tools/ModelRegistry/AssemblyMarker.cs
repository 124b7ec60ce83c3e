namespace ModelCar.ModelRegistry;

internal static class AssemblyMarker;
