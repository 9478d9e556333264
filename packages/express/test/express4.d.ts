// The Express 4 devDependency alias (`"express4": "npm:express@^4"`) ships no types; the tests use
// only the API both majors share, so Express 5's types describe it.
declare module 'express4' {
  import express from 'express';
  export default express;
}
