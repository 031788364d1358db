// A 300x200 picture of one colour, as a photo a user would classify.
window.picture = (color) => {
  const canvas = document.createElement('canvas');
  canvas.width = 300;
  canvas.height = 200;
  const context = canvas.getContext('2d');
  context.fillStyle = color;
  context.fillRect(0, 0, canvas.width, canvas.height);
  document.body.appendChild(canvas);
  return canvas;
};
