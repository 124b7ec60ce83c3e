namespace ModelCar.Registry;

internal static class AssemblyMarker;
