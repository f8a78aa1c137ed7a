// Available since Node 20 (V8 11.3); TypeScript only declares it in lib es2024.
interface String {
  isWellFormed(): boolean;
}
