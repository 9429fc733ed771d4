// ESLint: typescript-eslint's strict set over src/, test/ and bench/ (npm test runs it, and
// Prettier's check, before the tests). Formatting is Prettier's job alone.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  {ignores: ['dist/**', 'build/**', 'node_modules/**', 'native/**', 'scripts/**', 'bin/**', 'eslint.config.js']},
  js.configs.recommended,
  ...tseslint.configs.strict,
  {
    languageOptions: {ecmaVersion: 2022, sourceType: 'module'},
    rules: {
      // Indexing a typed array or a tuple after a bounds check is the common case here (codecs,
      // bitmaps); tsconfig does not set noUncheckedIndexedAccess, so `!` marks those spots.
      '@typescript-eslint/no-non-null-assertion': 'off',
      // A handler that refers to the object it is handed to (`let self; ... self = new X(...)`).
      'prefer-const': ['error', {ignoreReadBeforeAssign: true}],
    },
  },
)
